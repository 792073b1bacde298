package boot_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/board"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// bridgeConfig is an appliance whose containers share the bridge: web
// serves on port 80, published as 8080; client, once the uplink (eth0, by
// DHCP from QEMU) is up, fetches a page from the test's server on the
// host (10.0.2.2, through the egress NAT), web by name and through the
// published port, waits until the test has checked web from outside and
// isolated has tried, then powers the appliance off; isolated (net =
// "none") tries the host's server (on a loaded machine it used to start
// after the power-off). %[1]d is the test server's port.
const bridgeConfig = `
[[network.interface]]
name = "eth0"
dhcp = true

[[container]]
name = "web"
image = "/images/demo.tar.zst"
net = "bridge"
ports = ["8080:80"]
command = ["/bin/sh", "-c", """
trap 'exit 0' TERM
mkdir /tmp/www && echo "web page" > /tmp/www/index.html
ln -s /etc/resolv.conf /tmp/www/resolv && ln -s /etc/hosts /tmp/www/hosts
httpd -p 80 -h /tmp/www && httpd -p 8081 -h /tmp/www && echo web ready
while :; do sleep 1; done
"""]

[[container]]
name = "client"
image = "/images/demo.tar.zst"
net = "bridge"
after = ["web"]
needs_network = true
oneshot = true
command = ["/bin/sh", "-c", """
echo "egress: $(wget -q -O- http://10.0.2.2:%[1]d/page)"
echo "by name: $(wget -q -O- http://web/)"
echo "hairpin: $(wget -q -O- http://10.0.2.15:8080/)"
wget -q -O- http://web/hosts | sed 's/^/web hosts: /'
wget -q -O- http://web/resolv | sed 's/^/web resolv: /'
echo "outside checked: $(wget -q -O- http://10.0.2.2:%[1]d/done)"
while ! berth logs isolated | grep -q 'isolated reach'; do sleep 0.2; done
berth poweroff
"""]
` + vm.BerthCLIMounts + `
[[container]]
name = "isolated"
image = "/images/demo.tar.zst"
oneshot = true
needs_network = true
command = ["/bin/sh", "-c", """
wget -q -O- http://10.0.2.2:%[1]d/page && echo isolated reached the host || echo isolated reaches nothing
"""]
`

// freePort returns a TCP port of the host's loopback that is free now,
// for QEMU to listen on later. It is below the kernel's ephemeral range
// (ip_local_port_range): a port the kernel handed out for a moment (":0")
// may be given to any connection made meanwhile, and QEMU then cannot
// set up its forward (seen once in make test). No port is given twice.
func freePort(t *testing.T) int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 10000 + rand.IntN(low-10000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// fetch gets url, "" when it cannot.
func fetch(url string) string {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestQEMUBridge boots bridge containers on QEMU's user network, the
// uplink by berth's DHCP client: the test reaches the published port
// through QEMU's forward to the guest's port 8080, and not the
// container's unpublished port nor the appliance's port 80; a container
// fetches from the test's server on the host through the egress NAT,
// reaches another by name and through the published port, and sees the
// other's hosts and resolv.conf (the lease's DNS server); a net = "none"
// container reaches nothing.
func TestQEMUBridge(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			checked := make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/done" {
					<-checked
				}
				fmt.Fprintf(w, "hello from the host %s", r.URL.Path)
			})}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			published, unpublished, port80 := freePort(t), freePort(t), freePort(t)
			console := &testutil.SyncBuffer{}
			booted := make(chan struct{})
			outside := make(chan []string, 1)
			go func() { outside <- checkOutside(console, booted, published, unpublished, port80); close(checked) }()
			out, err := bootAppliance(t, appliance{
				arch:    arch,
				config:  fmt.Sprintf(bridgeConfig, l.Addr().(*net.TCPAddr).Port),
				modules: append([]string{"overlay", "virtio_pci", "virtio_net"}, board.NetModules...),
				serial:  console,
				vm: vm.Config{Net: &vm.UserNet{HostFwd: []string{
					fmt.Sprintf("tcp:127.0.0.1:%d-:8080", published),
					fmt.Sprintf("tcp:127.0.0.1:%d-:8081", unpublished),
					fmt.Sprintf("tcp:127.0.0.1:%d-:80", port80),
				}}},
			})
			close(booted)
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			for _, e := range <-outside {
				t.Error(e)
			}
			wantLines(t, out,
				"client | egress: hello from the host /page",
				"client | by name: web page",
				"client | hairpin: web page",
				"client | web hosts: 10.88.",
				"client | web resolv: nameserver 10.0.2.3",
				"client | outside checked: hello from the host /done",
				"isolated | isolated reaches nothing",
				"berth: power off",
			)
			if strings.Contains(out, "isolated reached the host") {
				t.Error("a net = none container reached the host")
			}
		})
	}
}

// checkOutside checks web's ports from the test's side of QEMU's forwards
// once the console shows web serving, and returns what went wrong.
func checkOutside(console *testutil.SyncBuffer, booted <-chan struct{}, published, unpublished, port80 int) []string {
	for !strings.Contains(console.String(), "web | web ready") {
		select {
		case <-booted:
			return []string{"web never got ready"}
		case <-time.After(100 * time.Millisecond):
		}
	}
	var errs []string
	got := ""
	for deadline := time.Now().Add(time.Minute); got == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = fetch(fmt.Sprintf("http://127.0.0.1:%d/", published))
	}
	if got != "web page\n" {
		errs = append(errs, fmt.Sprintf("the published port from the host: %q", got))
	}
	for what, p := range map[string]int{"the container's unpublished port 8081": unpublished, "port 80": port80} {
		if got := fetch(fmt.Sprintf("http://127.0.0.1:%d/", p)); got != "" {
			errs = append(errs, fmt.Sprintf("%s answered from outside: %q", what, got))
		}
	}
	return errs
}
