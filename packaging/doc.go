// Package packaging holds vipd's Debian packaging: the nfpm description,
// the systemd unit and its bird-ospf drop-in, the maintainer scripts, the
// default-config header and the lintian overrides. There is no Go API; the
// package's tests check the unit (the stop-timeout rule, systemd-analyze
// verify) and run vipd under exactly the unit's capability bounding set to
// show that each capability is needed and that together they suffice.
package packaging
