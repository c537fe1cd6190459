package bird

import (
	"context"
	"errors"
	"fmt"

	"github.com/vipd/vipd/routing"
)

// Exported implements routing.Advertiser. Reading the daemon back is not
// implemented yet: callers see errors.ErrUnsupported and must not treat it
// as an empty export.
func (a *Advertiser) Exported(context.Context) (routing.Exported, error) {
	return routing.Exported{}, fmt.Errorf("reading back the exported routes: %w", errors.ErrUnsupported)
}

// Resync implements routing.Advertiser; not implemented yet.
func (a *Advertiser) Resync(context.Context) error {
	return fmt.Errorf("resyncing the routes: %w", errors.ErrUnsupported)
}
