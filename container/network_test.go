package container

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/internal/rtnl"
	"berth/internal/testutil"
)

// TestBridgeNetwork starts bridge containers on a bridge made here, as
// package board makes berth0, and checks what the workload sees: eth0
// with its address and MAC, a default route through the bridge that
// answers, the hosts and resolv.conf files read-only — even where the
// image's /etc/hosts is a symlink aimed at the host — and, once it has
// ended, that its link went with its namespace. With and without a user
// namespace.
func TestBridgeNetwork(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.AddBridge("br0", nil)); err != nil {
		t.Fatal(err)
	}
	br, err := net.InterfaceByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(rtnl.AddAddr(br.Index, netip.MustParsePrefix("10.99.0.1/24"), 0)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hosts, resolv := filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv")
	put(hosts, "10.99.0.2\tweb\n")
	put(resolv, "nameserver 192.0.2.53\n")
	// An image whose /etc/hosts aims at a host file.
	hostFile := filepath.Join(dir, "host-file")
	put(hostFile, "host content\n")
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Symlink("../../../../../../.."+hostFile, filepath.Join(rootfs, "etc", "hosts")); err != nil {
		t.Fatal(err)
	}
	// Resolved inside the root, it names this file of the image.
	if err := os.MkdirAll(filepath.Join(rootfs, filepath.Dir(hostFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	put(filepath.Join(rootfs, hostFile), "image content\n")
	// A server on the bridge's address, the containers' gateway.
	ln, err := net.Listen("tcp", "10.99.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "gateway answers") }))
	script := `ip -4 addr show eth0; ip route; cat /sys/class/net/eth0/address
wget -q -O- http://` + ln.Addr().String() + `/
cat /etc/hosts /etc/resolv.conf
echo x >> /etc/hosts 2>/dev/null || echo hosts read-only
echo x >> /etc/resolv.conf 2>/dev/null || echo resolv.conf read-only`
	for i, userns := range []*UserNS{nil, defaultNS()} {
		t.Run(fmt.Sprintf("userns=%v", userns != nil), func(t *testing.T) {
			link := fmt.Sprintf("ctv%d", i)
			nw := &Network{Bridge: br.Index, Link: link, Address: netip.MustParsePrefix("10.99.0.2/24"),
				Gateway: netip.MustParseAddr("10.99.0.1"), Hosts: hosts, ResolvConf: resolv}
			exit, out, err := runWith(t, rootfs, Spec{Net: "bridge", UserNS: userns, Args: []string{"sh", "-c", script}}, Options{Network: nw})
			if err != nil || exit.Status() != 0 {
				t.Fatalf("start: %v, %s; output:\n%s", err, exit, out)
			}
			for _, w := range []string{"inet 10.99.0.2/24", "default via 10.99.0.1 dev eth0", "02:62:0a:63:00:02",
				"gateway answers", "10.99.0.2\tweb", "nameserver 192.0.2.53", "hosts read-only", "resolv.conf read-only"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if data, _ := os.ReadFile(hostFile); string(data) != "host content\n" {
				t.Errorf("the host file the image's /etc/hosts aims at now holds %q", data)
			}
			// The namespace took the pair with it (the kernel deletes it
			// shortly after the last process of the namespace is gone).
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, err := net.InterfaceByName(link); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("link %s is still there after the container ended", link)
				}
			}
		})
	}
	// Replaced by rename as the start runs (a DHCP lease on the
	// appliance), the resolv.conf makes the start go again: under the
	// same link name, which the failed attempt must have freed at once.
	t.Run("resolv.conf replaced as it starts", func(t *testing.T) {
		starts := 0
		afterHostMounts = func() {
			if starts++; starts == 1 {
				put(resolv+".new", "nameserver 192.0.2.54\n")
				if err := os.Rename(resolv+".new", resolv); err != nil {
					t.Error(err)
				}
			}
		}
		defer func() { afterHostMounts = nil }()
		nw := &Network{Bridge: br.Index, Link: "ctv8", Address: netip.MustParsePrefix("10.99.0.2/24"),
			Gateway: netip.MustParseAddr("10.99.0.1"), Hosts: hosts, ResolvConf: resolv}
		exit, out, err := runWith(t, rootfs, Spec{Net: "bridge", Args: []string{"cat", "/etc/resolv.conf"}}, Options{Network: nw})
		if err != nil || exit.Status() != 0 || !strings.Contains(out, "nameserver 192.0.2.54") || starts != 2 {
			t.Errorf("%d starts: %v, %s; output:\n%s", starts, err, exit, out)
		}
	})
	t.Run("hosts a dangling symlink", func(t *testing.T) {
		// What the link names is made inside the root, as runc does
		// (systemd images' /etc/resolv.conf); the host's file is not
		// touched.
		os.Remove(filepath.Join(rootfs, hostFile))
		defer os.Remove(filepath.Join(rootfs, hostFile))
		nw := &Network{Bridge: br.Index, Link: "ctv9", Address: netip.MustParsePrefix("10.99.0.2/24"),
			Gateway: netip.MustParseAddr("10.99.0.1"), Hosts: hosts, ResolvConf: resolv}
		exit, out, err := runWith(t, rootfs, Spec{Net: "bridge", Args: []string{"cat", "/etc/hosts"}}, Options{Network: nw})
		if err != nil || exit.Status() != 0 || !strings.Contains(out, "10.99.0.2") {
			t.Errorf("got %v, %s; output:\n%s", err, exit, out)
		}
		if b, _ := os.ReadFile(hostFile); string(b) != "host content\n" {
			t.Errorf("the host's file: %q", b)
		}
		if st, err := os.Stat(filepath.Join(rootfs, hostFile)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("the link's target inside the root: %v", err)
		}
	})
	t.Run("hosts a symlink loop", func(t *testing.T) {
		etcHosts := filepath.Join(rootfs, "etc", "hosts")
		old, _ := os.Readlink(etcHosts)
		os.Remove(etcHosts)
		if err := os.Symlink("hosts", etcHosts); err != nil {
			t.Fatal(err)
		}
		defer func() { os.Remove(etcHosts); os.Symlink(old, etcHosts) }()
		nw := &Network{Bridge: br.Index, Link: "ctva", Address: netip.MustParsePrefix("10.99.0.2/24"),
			Gateway: netip.MustParseAddr("10.99.0.1"), Hosts: hosts, ResolvConf: resolv}
		_, _, err := runWith(t, rootfs, Spec{Net: "bridge", Args: []string{"true"}}, Options{Network: nw})
		var se *StartError
		if !errors.As(err, &se) || se.Code != 125 || !strings.Contains(err.Error(), "mount target /etc/hosts") {
			t.Errorf("got %v", err)
		}
		if _, err := net.InterfaceByName("ctva"); err == nil {
			t.Error("the failed start left its link ctva behind")
		}
	})
	t.Run("without an attachment", func(t *testing.T) {
		_, _, err := run(t, rootfs, Spec{Net: "bridge", Args: []string{"true"}})
		var se *StartError
		if !errors.As(err, &se) || se.Code != 125 || !strings.Contains(err.Error(), "needs a network attachment") {
			t.Errorf("got %v", err)
		}
	})
}

func put(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		panic(err)
	}
}
