package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/boot"
	"berth/internal/busybox"
	"berth/internal/rtnl"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// These tests run berth as a user would on a development host, each in
// a network namespace of its own (testutil.InNetNS): a host whose only
// uplink, up0 (192.168.77.1/24), leads to an "outside" namespace
// (192.168.77.2/24) with a web server, standing for the LAN.

// outside is the namespace beyond the uplink.
type outside struct {
	pid int
	bb  string // busybox
}

func startOutside(t *testing.T) *outside {
	t.Helper()
	bb, err := busybox.Find(testutil.RepoRoot(), runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "index.html"), "hello from outside\n")
	cmd := exec.Command(bb, "httpd", "-f", "-p", "80", "-h", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ns, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.AddVeth(rtnl.Veth{Name: "up0", PeerName: "eth0", NetNS: int(ns.Fd())})); err != nil {
		t.Fatal(err)
	}
	up0, err := net.InterfaceByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(rtnl.AddAddr(up0.Index, netip.MustParsePrefix("192.168.77.1/24"), 0)); err != nil {
		t.Fatal(err)
	}
	o := &outside{pid: cmd.Process.Pid, bb: bb}
	if out, err := o.run("sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 192.168.77.2/24 dev eth0"); err != nil {
		t.Fatalf("outside: %v %s", err, out)
	}
	return o
}

// run runs a command in the outside namespace; a command that has not
// ended after 5 s is killed (a connection whose packets are dropped).
func (o *outside) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(o.pid) + "/ns/net"}, args...)...).CombinedOutput()
	return string(out), err
}

// waitGet fetches url from the outside namespace until it answers with
// want (a hang guard of 20 s, as waitGet's): a positive check, which a
// slow machine must not fail. Each attempt that failed is logged.
func (o *outside) waitGet(t *testing.T, url, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := o.run(o.bb, "wget", "-q", "-O-", url)
		if err == nil && strings.Contains(out, want) {
			return
		}
		t.Logf("%s from outside: %v %s", url, err, out)
		if time.Now().After(deadline) {
			t.Fatalf("%s from outside never answered %q", url, want)
		}
	}
}

// get fetches url from this namespace, "" when it cannot.
func get(url string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitGet polls url until it answers with want (a hang guard of 20 s).
func waitGet(t *testing.T, url, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(get(url), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %q", url, want)
		}
	}
}

// bridgeRootfs is a busybox root with a web root: /www/index.html names
// the container, /www/hosts is its /etc/hosts.
func bridgeRootfs(t *testing.T) string {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.MkdirAll(filepath.Join(rootfs, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(rootfs, "www", "index.html"), "hello from a container\n")
	if err := os.Symlink("/etc/hosts", filepath.Join(rootfs, "www", "hosts")); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// serve is a container command: httpd on port 80 (and 81) until SIGTERM.
const serve = `trap 'exit 0' TERM; echo "hello from $(hostname)" > /tmp/name; httpd -p 80 -h /www; httpd -p 81 -h /www; echo serving; while :; do sleep 0.05; done`

// startRun starts berth run in the background and waits for its first
// line of output.
func startRun(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"run"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("berth run %v: %q, %v", args, line, err)
	}
	return cmd
}

// stopRun sends SIGTERM to berth run and waits for it.
func stopRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("berth run after SIGTERM: %v", err)
	}
}

func nftTable(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", "berth").CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("nft: %v (make host-deps installs nftables)", err)
	}
	if err != nil {
		return ""
	}
	return string(out)
}

// leftovers lists what berth added that is still there: the bridge,
// veth links, the table, ip_forward, registry entries.
func leftovers(t testing.TB) []string {
	t.Helper()
	var left []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Name == "berth0" || strings.HasPrefix(i.Name, "bth") {
			left = append(left, "link "+i.Name)
		}
	}
	if nftTable(t) != "" {
		left = append(left, "table ip berth")
	}
	if f, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(f)) != "0" {
		left = append(left, "ip_forward "+strings.TrimSpace(string(f)))
	}
	entries, _ := filepath.Glob("/run/berth/net/*.entry")
	if _, err := os.Stat("/run/berth/net/bridge.state"); err == nil {
		entries = append(entries, "bridge.state")
	}
	return append(left, entries...)
}

// waitNothingLeft polls until berth has left nothing: the kernel deletes
// a dead namespace's links shortly after (a hang guard of 20 s).
func waitNothingLeft(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := leftovers(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", left)
		}
	}
}

// TestRunBridge is berth run --net bridge -p as a user runs it: a
// published port reached from the host on every address, egress
// masqueraded to the LAN, containers reaching each other by name and
// through published ports, hosts files following containers as they
// come and go, only published ports reachable from the LAN, a net=none
// container reaching nothing; and, once the last container has ended,
// nothing left.
func TestRunBridge(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	lan := startOutside(t)
	rootfs := bridgeRootfs(t)
	web := startRun(t, "--name", "web", "--net", "bridge", "-p", "8080:80", rootfs, "--", "sh", "-c", serve)
	db := startRun(t, "--name", "db", "--hostname", "database", "--net", "bridge", "--publish", "8090:80", rootfs, "--", "sh", "-c", serve)
	// 1. Published on 127.0.0.1, the bridge's address and the uplink's.
	for _, addr := range []string{"127.0.0.1", "10.88.0.1", "192.168.77.1"} {
		waitGet(t, "http://"+addr+":8080/", "hello from a container")
	}
	// 2. The containers know each other's names.
	if hosts := get("http://127.0.0.1:8080/hosts"); !strings.Contains(hosts, "database db\n") || !strings.Contains(hosts, "\tweb\n") {
		t.Errorf("web's /etc/hosts:\n%s", hosts)
	}
	// 3. A third container: egress to the LAN (which has no route back
	// to the bridge: only a masqueraded connection is answered), the
	// others by name, and through the appliance's published port.
	status, out, stderr := berth(t, "run", "--net", "bridge", rootfs, "--", "sh", "-c",
		"wget -q -O- http://192.168.77.2/; wget -q -O- http://db/; wget -q -O- http://192.168.77.1:8080/; cat /etc/resolv.conf /proc/net/arp")
	// Its gateway has the bridge's own MAC, made of 10.88.0.1, not that
	// of a port (its own among them), which would change as containers
	// come and go.
	for _, w := range []string{"hello from outside", "hello from a container\nhello from a container", "10.88.0.1        0x1         0x2         02:62:0a:58:00:01"} {
		if status != 0 || !strings.Contains(out, w) {
			t.Errorf("client: status %d, output lacks %q:\n%s%s", status, w, out, stderr)
		}
	}
	// 4. From the LAN: the published port answers, nothing else does —
	// not an unpublished port, not the container's own address.
	lan.waitGet(t, "http://192.168.77.1:8080/", "hello from a container")
	if out, err := lan.run("ip", "route", "add", "10.88.0.0/16", "via", "192.168.77.1"); err != nil {
		t.Fatalf("route to the bridge through the appliance: %v %s", err, out)
	}
	webAddr := lookupHost(t, get("http://127.0.0.1:8090/hosts"), "web")
	for _, url := range []string{"http://192.168.77.1:81/", "http://" + webAddr + ":80/", "http://" + webAddr + ":81/"} {
		if out, err := lan.run(lan.bb, "wget", "-q", "-O-", url); err == nil || strings.Contains(out, "hello") {
			t.Errorf("%s reached from the LAN: %s", url, out)
		}
	}
	// 5. A net=none container reaches nothing.
	if status, out, _ := berth(t, "run", rootfs, "--", "wget", "-q", "-O-", "http://192.168.77.2/"); status == 0 || strings.Contains(out, "hello") {
		t.Errorf("net=none reached the LAN: %d %s", status, out)
	}
	// 6. web stops: its port is withdrawn, db's hosts forgets it; the
	// bridge stays for db.
	stopRun(t, web)
	if strings.Contains(nftTable(t), "dport 8080") {
		t.Errorf("port 8080 still published:\n%s", nftTable(t))
	}
	if hosts := get("http://127.0.0.1:8090/hosts"); strings.Contains(hosts, "web") || !strings.Contains(hosts, "db") {
		t.Errorf("db's /etc/hosts after web stopped:\n%s", hosts)
	}
	// 7. db stops: nothing is left.
	stopRun(t, db)
	waitNothingLeft(t)
}

// lookupHost finds name's address in a hosts file.
func lookupHost(t *testing.T, hosts, name string) string {
	for _, line := range strings.Split(hosts, "\n") {
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			if n == name {
				return f[0]
			}
		}
	}
	t.Fatalf("no %s in\n%s", name, hosts)
	return ""
}

// TestRunBridgeKilled: a berth run killed with SIGKILL leaves its bridge,
// table and entry; the next berth run --net bridge removes them when it
// exits, and so does berth boot at its start.
func TestRunBridgeKilled(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	rootfs := bridgeRootfs(t)
	for _, next := range []string{"run", "boot"} {
		web := startRun(t, "--name", "web", "--net", "bridge", "-p", "8080:80", rootfs, "--", "sh", "-c", serve)
		waitGet(t, "http://127.0.0.1:8080/", "hello from a container")
		web.Process.Kill()
		web.Wait()
		if len(leftovers(t)) < 3 {
			t.Fatalf("a killed berth run left only %v: nothing to clean up", leftovers(t))
		}
		switch next {
		case "run":
			if status, _, stderr := berth(t, "run", "--net", "bridge", rootfs, "--", "true"); status != 0 {
				t.Fatalf("the next berth run: %d %s", status, stderr)
			}
		case "boot":
			dir := t.TempDir()
			write(t, filepath.Join(dir, "berth.toml"), "")
			if status, _, stderr := berth(t, "boot", "--config", filepath.Join(dir, "berth.toml"), "--state", dir, "--socket", filepath.Join(dir, "sock")); status != 0 {
				t.Fatalf("berth boot: %d %s", status, stderr)
			}
		}
		waitNothingLeft(t)
	}
}

// TestBootBridge runs berth boot with bridge containers: ps shows their
// addresses and published ports; a stopped container's port is withdrawn
// and it gets the same address when it starts again; at power off
// nothing is left.
func TestBootBridge(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	dir := t.TempDir()
	if status, _, stderr := berth(t, "image", "pack", bridgeRootfs(t), "-o", filepath.Join(dir, "web.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, fmt.Sprintf(`
[network]
bridge = "10.77.0.1/24"

[[container]]
name = "web"
image = "web.tar.zst"
net = "bridge"
ports = ["8080:80", "5353:53/udp"]
restart = "always"
command = ["sh", "-c", %q]

[[container]]
name = "db"
image = "web.tar.zst"
net = "bridge"
restart = "always"
command = ["sh", "-c", %q]
`, serve, serve))
	_, cmd := bootInDir(t, dir, cfg)
	ps := func() map[string]boot.Process {
		procs := map[string]boot.Process{}
		_, stdout, _ := berth(t, "ps", "--json")
		var list []boot.Process
		json.Unmarshal([]byte(stdout), &list)
		for _, p := range list {
			procs[p.Name] = p
		}
		return procs
	}
	waitGet(t, "http://127.0.0.1:8080/", "hello from a container")
	p := ps()
	web := p["web"]
	if !strings.HasPrefix(web.Address, "10.77.0.") || strings.Join(web.Ports, " ") != "8080:80/tcp 5353:53/udp" || p["db"].Address == "" || len(p["db"].Ports) != 0 {
		t.Errorf("ps: web %+v, db %+v", web, p["db"])
	}
	if _, table, _ := berth(t, "ps"); !strings.Contains(table, web.Address) || !strings.Contains(table, "8080:80/tcp,5353:53/udp") {
		t.Errorf("berth ps:\n%s", table)
	}
	if hosts := get("http://127.0.0.1:8080/hosts"); lookupHost(t, hosts, "db") != p["db"].Address {
		t.Errorf("web's /etc/hosts:\n%s", hosts)
	}
	if status, _, stderr := berth(t, "stop", "web"); status != 0 {
		t.Fatal(stderr)
	}
	if p := ps()["web"]; p.Address != web.Address || len(p.Ports) != 0 || strings.Contains(nftTable(t), "dport 8080") {
		t.Errorf("stopped web: %+v\n%s", p, nftTable(t))
	}
	if status, _, stderr := berth(t, "start", "web"); status != 0 {
		t.Fatal(stderr)
	}
	waitGet(t, "http://127.0.0.1:8080/", "hello from a container")
	if a := ps()["web"].Address; a != web.Address {
		t.Errorf("web started again at %s, was %s", a, web.Address)
	}
	if status, _, stderr := berth(t, "poweroff"); status != 0 {
		t.Fatal(stderr)
	}
	cmd.Wait()
	waitNothingLeft(t)
}

// TestRunBridgeLocalnet is the attack route_localnet opens (the bridge
// needs it for ports published on 127.0.0.1; CVE-2020-8558): a container
// with CAP_NET_RAW sends a datagram for 127.0.0.1 to the appliance in a
// raw frame. The same packet sent to the bridge's address arrives; the
// one for the appliance's loopback-only service must not, nor one to the
// bridge's address from a source outside the bridge's subnet (spoofed).
func TestRunBridgeLocalnet(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	rootfs := bridgeRootfs(t)
	if err := vm.BuildGo(testutil.RepoRoot(), "./container/testdata/probe", runtime.GOARCH, filepath.Join(rootfs, "bin", "probe")); err != nil {
		t.Fatal(err)
	}
	local, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	control, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	spoofed, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer spoofed.Close()
	port := func(c net.PacketConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
	status, out, stderr := berth(t, "run", "--net", "bridge", "--cap-add", "NET_RAW", rootfs, "--", "sh", "-c",
		fmt.Sprintf("probe localnet 127.0.0.1 %d && probe localnet 10.88.0.1 %d 192.168.77.7 && probe localnet 10.88.0.1 %d",
			port(local), port(spoofed), port(control)))
	if status != 0 {
		t.Fatalf("probe: %d %s%s", status, out, stderr)
	}
	buf := make([]byte, 64)
	control.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _, err := control.ReadFrom(buf); err != nil || string(buf[:n]) != "berth-localnet-probe" {
		t.Fatalf("the probe's datagram to the bridge's address: %q, %v", buf[:n], err)
	}
	// Sent first, on the same path, they would be here by now.
	local.SetReadDeadline(time.Now().Add(time.Second))
	if n, from, err := local.ReadFrom(buf); err == nil {
		t.Errorf("a container reached the appliance's 127.0.0.1: %q from %v", buf[:n], from)
	}
	spoofed.SetReadDeadline(time.Now().Add(time.Second))
	if n, from, err := spoofed.ReadFrom(buf); err == nil {
		t.Errorf("a container's packet from a spoofed source reached the appliance: %q from %v", buf[:n], from)
	}
}
