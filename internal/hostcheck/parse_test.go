package hostcheck

import "testing"

func TestCountCPUs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"0\n", 1, false},
		{"0-55\n", 56, false},
		{"0-27,32-47", 44, false},
		{"0,2,4-5", 4, false},
		{"", 0, true},
		{"3-1", 0, true},
		{"0-x", 0, true},
	} {
		got, err := countCPUs(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("countCPUs(%q) = %d, %v; want %d, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		in        string
		maj, min  int
		before420 bool
	}{
		{"4.19.12-1.el7.elrepo.x86_64", 4, 19, true},
		{"3.10.0-1160.el7.x86_64", 3, 10, true},
		{"4.20.0", 4, 20, false},
		{"5.10.0-23-amd64", 5, 10, false},
		{"6.18.44-fc-v782", 6, 18, false},
	} {
		maj, min, err := kernelVersion(tc.in)
		if err != nil || maj != tc.maj || min != tc.min {
			t.Errorf("kernelVersion(%q) = %d, %d, %v", tc.in, maj, min, err)
		}
		if b, _ := kernelBefore(tc.in, 4, 20); b != tc.before420 {
			t.Errorf("kernelBefore(%q, 4, 20) = %t", tc.in, b)
		}
	}
	if _, _, err := kernelVersion("linux"); err == nil {
		t.Error(`kernelVersion("linux") succeeded`)
	}
}

func FuzzCountCPUs(f *testing.F) {
	for _, s := range []string{"0", "0-55", "0-27,32-47", "1,3,5", "", "-", "9-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := countCPUs(s)
		if err == nil && n < 1 {
			t.Errorf("countCPUs(%q) = %d without error", s, n)
		}
	})
}

func FuzzKernelVersion(f *testing.F) {
	for _, s := range []string{"4.19.12-1.el7.elrepo.x86_64", "6.18.0", "5", "", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		maj, min, err := kernelVersion(s)
		if err != nil {
			return
		}
		if b, err := kernelBefore(s, maj, min+1); err != nil || !b {
			t.Errorf("kernelVersion(%q) = %d.%d but kernelBefore(%d.%d) = %t, %v", s, maj, min, maj, min+1, b, err)
		}
	})
}
