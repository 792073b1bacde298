package rtnl

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// IgnoreRouterAds sets accept_ra = 0 for each of devs ("default" for the
// interfaces made later) in the calling thread's network namespace: a
// router advertisement from whoever shares their link would otherwise
// give them a prefix and a default route (CVE-2020-13401). An IPv6 built
// as a module is loaded first — an AF_INET6 socket makes the kernel ask
// for it — so that it cannot arrive later, asked for by anyone, with
// accept_ra = 1; with IPv6 off (ipv6.disable=1) there is nothing to set.
func IgnoreRouterAds(devs ...string) error {
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil // no IPv6 in this kernel
		}
		unix.Close(fd)
	}
	for _, d := range devs {
		p := "/proc/sys/net/ipv6/conf/" + d + "/accept_ra"
		err := os.WriteFile(p, []byte("0"), 0)
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat("/proc/sys/net/ipv6"); errors.Is(serr, os.ErrNotExist) {
				return nil // no IPv6 in this kernel
			}
		}
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", p, err)
		}
	}
	return nil
}
