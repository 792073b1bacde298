package board

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"
	"time"
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
// lease; on the same one an ACK keeps it. A carrier still lost at T1
// holds the renewal back until it is back, then the lease is checked so.
// A cable pulled and plugged in again between two of the client's looks
// at the carrier is seen by the kernel's count of carrier losses.
func TestDHCPReplug(t *testing.T) {
	for _, tc := range []struct {
		name       string
		moved      bool
		secs, t1   int64 // the first lease's
		pastRenewT bool  // the carrier comes back only after T1
		flap       bool  // lost and back at once, between two looks
	}{
		{"another network", true, 0xffffffff, -1, false, false},
		{"same network", false, 0xffffffff, -1, false, false},
		{"back after T1", false, 20, -1, true, false},
		{"another network, replugged between two looks", true, 0xffffffff, -1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !inNewNetNS(t) {
				return
			}
			moved := tc.moved
			old := netip.MustParseAddr("10.7.0.15")
			var replugged atomic.Bool
			peer := newTestLAN(t, "up0")
			srv := startServer(t, peer, func(s *testServer, r seenRequest) {
				switch {
				case !replugged.Load() && r.typ == dhcpDiscover:
					s.send(r, ack(dhcpOffer, "10.7.0.15", tc.secs, tc.t1, -1))
				case !replugged.Load() || !moved:
					s.send(r, ack(dhcpAck, "10.7.0.15", tc.secs, tc.t1, -1))
				case r.typ == dhcpRequest && r.requested == old:
					s.send(r, nak())
				case r.typ == dhcpDiscover:
					s.send(r, ack(dhcpOffer, "10.7.0.16", 3600, -1, -1))
				default:
					s.send(r, ack(dhcpAck, "10.7.0.16", 3600, -1, -1))
				}
			})
			run := startUplink(t, Interface{Name: "up0", DHCP: true})
			waitFor(t, "the lease", func() bool {
				st := run.status()
				return st.Ready && st.Lease != nil && st.Lease.Address == "10.7.0.15/24"
			})
			before := len(srv.requests())
			replugged.Store(true)
			setPeerLink(t, peer, "down")
			if !tc.flap {
				waitFor(t, "the carrier seen lost", func() bool { return run.status().State == "bound, no carrier" })
			}
			if tc.pastRenewT {
				renew := *run.status().Lease.Renew
				waitFor(t, "T1 to pass", func() bool { return time.Now().After(renew.Add(carrierPoll)) })
			}
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
				waitFor(t, "the lease checked", func() bool { return run.logged("DHCP lease renewed: 10.7.0.15/24") >= 1 })
				if st := run.status(); st.State != "bound" || !st.Ready || run.logged("lost") > 0 {
					t.Errorf("after the ACK: %+v, %d losses logged", st, run.logged("lost"))
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
			if r.typ != dhcpRequest || !r.broadcast || r.flags&0x8000 == 0 || r.ciaddr.IsValid() || r.requested != old || r.server.IsValid() {
				t.Errorf("the first message after the replug: %+v, want a broadcast REQUEST (asking for a broadcast reply) for %s naming no server, from no address", r, old)
			}
		})
	}
}
