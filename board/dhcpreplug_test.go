package board

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"
)

// setPeerLink sets the test LAN's server end, srv0 in the namespace
// peer, "up" or "down": the client's end gains or loses its carrier as a
// plugged or pulled cable would.
func setPeerLink(t *testing.T, peer *os.File, state string) {
	t.Helper()
	inNS(t, peer, func() {
		if out, err := exec.Command("ip", "link", "set", "srv0", state).CombinedOutput(); err != nil {
			t.Errorf("ip link set srv0 %s: %v\n%s", state, err, out)
		}
	})
}

// TestDHCPReplug: a link whose carrier goes and comes back (its cable
// moved) has its lease checked at once, an infinite one too, by a
// broadcast REQUEST for its address that names no server (INIT-REBOOT).
// On another network a NAK drops it and the client gets that network's
// lease; on the same one an ACK keeps it.
func TestDHCPReplug(t *testing.T) {
	for _, moved := range []bool{true, false} {
		name := "same network"
		if moved {
			name = "another network"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !inNewNetNS(t) {
				return
			}
			old := netip.MustParseAddr("10.7.0.15")
			var replugged atomic.Bool
			peer := newTestLAN(t, "up0")
			srv := startServer(t, peer, func(s *testServer, r seenRequest) {
				switch {
				case !replugged.Load() && r.typ == dhcpDiscover:
					s.send(r, ack(dhcpOffer, "10.7.0.15", 0xffffffff, -1, -1))
				case !replugged.Load() || !moved:
					s.send(r, ack(dhcpAck, "10.7.0.15", 0xffffffff, -1, -1))
				case r.typ == dhcpRequest && r.requested == old:
					s.send(r, nak())
				case r.typ == dhcpDiscover:
					s.send(r, ack(dhcpOffer, "10.7.0.16", 3600, -1, -1))
				default:
					s.send(r, ack(dhcpAck, "10.7.0.16", 3600, -1, -1))
				}
			})
			run := startUplink(t, Interface{Name: "up0", DHCP: true})
			waitFor(t, "the infinite lease", func() bool {
				st := run.status()
				return st.Ready && st.Lease != nil && st.Lease.Address == "10.7.0.15/24" && st.Lease.Seconds == 0
			})
			before := len(srv.requests())
			replugged.Store(true)
			setPeerLink(t, peer, "down")
			waitFor(t, "the carrier seen lost", func() bool { return run.status().State == "bound, no carrier" })
			setPeerLink(t, peer, "up")
			if moved {
				waitFor(t, "the other network's lease", func() bool {
					st := run.status()
					return st.Ready && st.Lease != nil && st.Lease.Address == "10.7.0.16/24"
				})
				if run.logged(`lost: the link came back: the server refused (DHCPNAK) ("wrong network")`) != 1 {
					t.Error("the NAK is not logged")
				}
			} else {
				waitFor(t, "the lease checked", func() bool { return len(srv.requests()) > before && run.status().State == "bound" })
				if n := run.logged("lost"); n > 0 {
					t.Errorf("the lease was lost %d times", n)
				}
			}
			want := "10.7.0.15/24"
			if moved {
				want = "10.7.0.16/24"
			}
			if got := kernelAddrs(t, "up0"); !slices.Equal(got, []string{want}) {
				t.Errorf("addresses %v, want only %s", got, want)
			}
			r := srv.requests()[before]
			if r.typ != dhcpRequest || !r.broadcast || r.ciaddr.IsValid() || r.requested != old || r.server.IsValid() {
				t.Errorf("the first message after the replug: %+v, want a broadcast REQUEST for %s naming no server, from no address", r, old)
			}
		})
	}
}
