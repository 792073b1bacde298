package boot_test

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"berth/internal/vm"
)

// networkConfig is an appliance with two NICs on QEMU's user networks:
// the first, by DHCP, must be renamed uplink0 by the admin container
// before berth finds it, so that a container that needs the network
// deterministically waits; the second, matched by MAC, has a static
// address and no gateway. %d are the host's HTTP ports.
const networkConfig = `
# No hostname: the lease's names the appliance.

[board]
modules = ["nf_tables"] # libcrc32c needs crc32c first: modules.softdep

[[network.interface]]
name = "uplink0"
dhcp = true
dns = ["10.0.2.4"]

[[network.interface]]
mac = "52:54:00:00:07:02"
address = "192.168.7.2/24"
mtu = 1400

[[container]]
name = "fast"
image = "/images/demo.tar.zst"
restart = "always"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo fast up; while :; do sleep 1; done"]

[[container]]
name = "web"
image = "/images/demo.tar.zst"
oneshot = true
needs_network = true
net = "host"
command = ["/bin/sh", "-c", """
echo "route: $(awk '$2 == "00000000" { print $1, $3 }' /proc/net/route)"
sed 's/^/resolv: /' /etc/resolv.conf
wget -q -O - http://10.0.2.2:%d/
"""]
[[container.mount]]
source = "/etc/resolv.conf"
target = "/etc/resolv.conf"
readonly = true

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
net = "host"
cap_add = ["NET_ADMIN"]
command = ["/bin/sh", "/demo/net-admin.sh", "%d"]
` + vm.BerthCLIMounts

// netAdminScript checks, from a management container on the host's
// network, what berth status and ps show, renames the first NIC to let
// berth find it, and makes the kernel ask for a module.
const netAdminScript = `#!/bin/sh
until berth ps | grep -q '^web .*uplink0: waiting for the link'; do sleep 0.2; done
echo "== ps before the uplink"
berth ps
nic=
while [ -z "$nic" ]; do
  for d in /sys/class/net/*; do [ "$(cat $d/address)" = 52:54:00:12:34:56 ] && nic=${d##*/}; done
  sleep 0.1
done
echo "== renaming $nic to uplink0"
ip link set "$nic" name uplink0
until berth ps | grep -q '^web .*exited'; do sleep 0.2; done
echo "== status"
berth status
berth status --json | tr -d ' ' | sed 's/^/json: /'
wget -q -O - http://192.168.7.1:$1/
ip link add vtest type veth && grep -q '^veth ' /proc/modules && echo "veth loaded at the kernel's request"
grep -q '^nf_tables ' /proc/modules && echo "nf_tables loaded"
berth poweroff
`

// serveHTTP serves text on the host's loopback, where QEMU's user network
// sends the guest's connections to its host address; it returns the port.
func serveHTTP(t *testing.T, text string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, text) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestQEMUNetwork boots the network appliance on each architecture: the
// uplink gets QEMU's lease (10.0.2.15/24, router 10.0.2.2, the DNS server
// QEMU was given, after the configured one, and the host name), a
// container that needs the network waits for it — ps says so — while the
// others run, then starts and reaches the test's server on the host's
// loopback; the static NIC carries traffic too; nf_tables loads with its
// soft dependency, and a module the kernel asks for at run time loads.
func TestQEMUNetwork(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			uplinkPort, staticPort := serveHTTP(t, "hello over the uplink"), serveHTTP(t, "hello over the static link")
			out, err := bootAppliance(t, appliance{
				arch: arch, config: fmt.Sprintf(networkConfig, uplinkPort, staticPort),
				files:   map[string]string{"demo/net-admin.sh": netAdminScript, "etc/resolv.conf": ""},
				modules: []string{"overlay", "virtio_pci", "virtio_net", "nf_tables", "veth"},
				vm: vm.Config{Net: &vm.UserNet{Hostname: "appliance-7"}, ExtraQEMU: []string{
					"-netdev", "user,id=n1,net=192.168.7.0/24,host=192.168.7.1",
					"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:00:07:02"}},
			})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			wantLines(t, out,
				"network: uplink0: no such interface yet; waiting for it",
				"network: mac 52:54:00:00:07:02: eth", "192.168.7.2/24, no gateway",
				"container web: waiting for the network (uplink0: waiting for the link;",
				"admin | web ", "waiting (waiting for the network (uplink0: waiting for the link;",
				"network: uplink0: appeared as uplink0 after",
				"network: uplink0: DHCP lease 10.0.2.15/24 from 10.0.2.2 for 24h0m0s: router 10.0.2.2, DNS [10.0.2.3]",
				"network: hostname appliance-7, from the DHCP lease",
				"web | route: uplink0 0202000A",
				"web | resolv: nameserver 10.0.2.4", "web | resolv: nameserver 10.0.2.3",
				"web | hello over the uplink",
				"uplink0 (52:54:00:12:34:56) dhcp bound: 10.0.2.15/24, gateway 10.0.2.2, dns 10.0.2.4 10.0.2.3, lease 24h0m0s expires in",
				`"lease_seconds":86400`, `"gateway":"10.0.2.2"`, `"mtu":1400`,
				"admin | hello over the static link",
				"admin | veth loaded at the kernel's request",
				"admin | nf_tables loaded",
				"berth: power off",
			)
			inOrder(t, out, "container fast started", "admin | == ps before the uplink", "admin | fast ", "running",
				"admin | == renaming", "network: uplink0: appeared", "DHCP lease 10.0.2.15/24", "container web started")
			// berth loads crc32c itself, before libcrc32c: the soft
			// dependency, not the kernel's request for it.
			if !regexp.MustCompile(`config modules loaded: \[.*\bcrc32c_\w+ (crc32c_\w+ )?libcrc32c nf_tables\]`).MatchString(out) {
				t.Errorf("config modules loaded: want crc32c, libcrc32c, nf_tables in that order")
			}
			for _, bad := range []string{"warning: load module", "berth modprobe", "could not start"} {
				if strings.Contains(out, bad) {
					t.Errorf("console shows %q", bad)
				}
			}
			dhcpTime(t, out)
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
		})
	}
}

// dhcpTime reports how long the lease took from the moment berth asked.
func dhcpTime(t *testing.T, out string) {
	at := func(what string) float64 {
		m := regexp.MustCompile(`\[\s*([0-9.]+)\] berth: [^\n]*` + regexp.QuoteMeta(what)).FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	ask, lease := at("uplink0: uplink0 is up; asking for a DHCP lease"), at("uplink0: DHCP lease 10.0.2.15/24")
	t.Logf("DHCP: asked at %.3f s, lease at %.3f s after boot (%.0f ms)", ask, lease, (lease-ask)*1000)
}
