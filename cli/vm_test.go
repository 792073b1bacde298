package cli

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/internal/testutil"
)

// vmAppliance writes an amd64 appliance beside config: a busybox image
// (this machine's architecture, amd64 as the tests run) whose
// /bin/respond answers one HTTP request with the hostname (a container's
// is its name), and config.
func vmAppliance(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t)
	write(t, filepath.Join(rootfs, "bin/respond"), "#!/bin/sh\nread request\n"+
		`printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from %s\n' "$(hostname)"`+"\n")
	if err := os.Chmod(filepath.Join(rootfs, "bin/respond"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", filepath.Join(dir, "images/app.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	path := filepath.Join(dir, "berth.toml")
	write(t, path, config)
	return path
}

// forwardConfig serves one HTTP request on the appliance's port 8080,
// once DHCP on QEMU's user network has given it an address; then its only
// container has ended and berth powers the appliance off.
const forwardConfig = `
hostname = "vm-test"

[[network.interface]]
mac = "52:54:00:12:34:56"
dhcp = true

[[container]]
name = "web"
image = "images/app.tar.zst"
net = "host"
needs_network = true
command = ["nc", "-l", "-p", "8080", "-e", "/bin/respond"]
`

// TestQEMUVMForwardedPort boots an appliance with berth vm on amd64 —
// the Debian kernel make fetch unpacked, its modules (the virtio NIC's
// among them) from the kernel's package — forwards a port of this
// machine to its web server, reaches it, and sees berth vm exit 0 once
// the appliance has powered itself off, its console on stdout.
func TestQEMUVMForwardedPort(t *testing.T) {
	config := vmAppliance(t, forwardConfig)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(berthBin, "vm", "--arch", "amd64", "--timeout", "10m", "-p", fmt.Sprintf("%d:8080", port), config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Until the appliance listens, QEMU takes the connection and closes it.
	var answer string
	for answer == "" {
		select {
		case err := <-exited:
			t.Fatalf("berth vm ended before answering: %v\nstderr:\n%s\nconsole:\n%s", err, stderr.String(), stdout.String())
		case <-time.After(200 * time.Millisecond):
		}
		answer = rawGet(fmt.Sprintf("127.0.0.1:%d", port))
	}
	if !strings.Contains(answer, "hello from web") {
		t.Errorf("answer %q", answer)
	}
	if err := <-exited; err != nil {
		t.Errorf("berth vm: %v\nstderr:\n%s", err, stderr.String())
	}
	for _, w := range []string{"network: mac 52:54:00:12:34:56: eth0", "DHCP lease 10.0.2.15/24", "container web exited with status 0", "berth: power off"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("the console lacks %q", w)
		}
	}
	for _, w := range []string{"modules of 6.", "virtio_net", "berth vm: the appliance powered off"} {
		if !strings.Contains(stdout.String()+stderr.String(), w) {
			t.Errorf("berth vm's output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s\nconsole:\n%s", stderr.String(), stdout.String())
	}
}

// rawGet sends an HTTP request to addr and returns the answer, or "".
func rawGet(addr string) string {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang guard
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return ""
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}

// TestQEMUVMExitStatus: berth vm exits 1 — not 0 — when berth failed
// and then powered the appliance off (berth.panic=poweroff), when the
// kernel panicked (no init: rdinit names none), and when --timeout
// passed; its stderr says which. (0, a clean power-off, is
// TestQEMUVMForwardedPort's.)
func TestQEMUVMExitStatus(t *testing.T) {
	oneshot := vmAppliance(t, "[[container]]\nname = \"hello\"\nimage = \"images/app.tar.zst\"\ncommand = [\"echo\", \"hello\"]\n")
	forever := vmAppliance(t, "[[container]]\nname = \"forever\"\nimage = \"images/app.tar.zst\"\ncommand = [\"sleep\", \"1000000\"]\n")
	tests := []struct {
		name    string
		args    []string
		stderr  string
		console string
	}{
		{"berth fails, then powers off", []string{"--append", "berth.config=/etc/none.toml", "--append", "berth.panic=poweroff", oneshot},
			"berth: vm: berth failed, then powered off: [", "berth: power off"},
		{"kernel panic", []string{"--append", "rdinit=/none", oneshot},
			"berth: vm: the kernel panicked: [", "Kernel panic - not syncing"},
		{"timeout", []string{"--timeout", "20s", forever},
			"berth: vm: no shutdown in time: QEMU killed (--timeout 20s)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, stdout, stderr := berth(t, append([]string{"vm", "--arch", "amd64", "--timeout", "10m"}, tc.args...)...)
			if status != 1 || !strings.Contains(stderr, tc.stderr) || !strings.Contains(stdout, tc.console) {
				t.Errorf("status %d, want 1; stderr:\n%s\nwant %q; console:\n%s\nwant %q", status, stderr, tc.stderr, stdout, tc.console)
			}
		})
	}
}

// TestVMRefuses checks berth vm's flags, and refuses, before booting, a
// Debian kernel with the modules of another release and a missing disk.
func TestVMRefuses(t *testing.T) {
	config := filepath.Join(t.TempDir(), "berth.toml")
	write(t, config, "[storage]\ndevice = \"LABEL=data\"\n[[container]]\nname = \"a\"\nimage = \"/data/a.tar.zst\"\ncommand = [\"true\"]\n")
	modules, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), ".cache/deb/amd64/linux-image/lib/modules/*"))
	if len(modules) != 1 {
		t.Fatalf("Debian's amd64 modules: %v (make fetch-amd64)", modules)
	}
	kernel := filepath.Join(t.TempDir(), "vmlinuz-9.9.9-amd64")
	write(t, kernel, "not a kernel")
	tests := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"-p", "80", config}, 2, `berth vm: -p "80": want HOSTPORT:GUESTPORT, ports 1-65535`},
		{[]string{"--mem", "lots", config}, 2, `berth vm: --mem "lots": want MiB`},
		{[]string{"--mem", "32M", config}, 2, `berth vm: --mem "32M": at least 64M`},
		{[]string{"--timeout", "-1s", config}, 2, "berth vm: --timeout -1s: want a duration of 0 or more"},
		{[]string{"--arch", "sparc", config}, 2, `--arch "sparc"`},
		{[]string{config, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--kernel", kernel, "--modules", modules[0], config}, 1,
			"the modules in " + modules[0] + " are for kernel " + filepath.Base(modules[0]) + ", not " + kernel},
		{[]string{"--kernel", kernel, "--modules", modules[0], "--disk", "/nonexistent.img", config}, 1, "disk: stat /nonexistent.img"},
		{[]string{"--kernel", "/nonexistent/vmlinuz", config}, 1, "kernel: stat /nonexistent/vmlinuz"},
	}
	for _, tc := range tests {
		status, _, stderr := berth(t, append([]string{"vm", "--arch", "amd64"}, tc.args...)...)
		if status != tc.status || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth vm %v: status %d, stderr %q; want %d and %q", tc.args, status, stderr, tc.status, tc.want)
		}
	}
}
