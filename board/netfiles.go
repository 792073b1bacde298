package board

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/internal/safe"
)

// The files bind-mounted into each bridge container, at /etc/hosts and
// /etc/resolv.conf. They are rewritten in place — the same inode, which
// the container's bind mount shows — whenever a container comes or goes
// or the appliance's DNS changes.

// hostsFile renders e's /etc/hosts: localhost, its own names, then every
// other attached container's.
func hostsFile(e *entry, attached []*entry) []byte {
	var b strings.Builder
	b.WriteString("# written by berth: this container, then the others on the bridge\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	line := func(o *entry) {
		b.WriteString(o.Address.String() + "\t")
		if o.Hostname != "" && o.Hostname != o.Name {
			b.WriteString(o.Hostname + " ")
		}
		b.WriteString(o.Name + "\n")
	}
	line(e)
	for _, o := range attached {
		if o.Name != e.Name {
			line(o)
		}
	}
	return []byte(b.String())
}

// resolvFile renders the containers' /etc/resolv.conf from the
// appliance's: its search domains and options, and the name servers a
// container can reach — not those on the appliance's loopback (a local
// resolver such as systemd-resolved's 127.0.0.53), and not IPv6 ones, as
// the bridge is IPv4 only.
func resolvFile(host []byte) []byte {
	var b strings.Builder
	b.WriteString("# written by berth from the appliance's resolver configuration\n")
	servers := 0
	sc := bufio.NewScanner(strings.NewReader(string(host)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err != nil || !a.Is4() || a.IsLoopback() {
				fmt.Fprintf(&b, "# %s: not reachable from a container\n", strings.Join(f, " "))
				continue
			}
			servers++
			fmt.Fprintf(&b, "nameserver %s\n", a)
		case "search", "domain", "options":
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	if servers == 0 {
		b.WriteString("# the appliance has no name server a container can reach\n")
	}
	return []byte(b.String())
}

// readResolvConf reads the appliance's resolver configuration (at most
// 64 KiB; a missing file is an empty one).
func readResolvConf(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, maxEntrySize))
	return data
}

// writeInPlace writes data over the registry file name, keeping its inode
// (a running container has it bind-mounted), without following a
// symlink; mode 0644, so that any user in a container can read it.
func (r *registry) writeInPlace(name string, data []byte) error {
	fd, err := unix.Openat(r.dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("network registry: %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("network registry: %s is not a regular file", name)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("network registry: %s: %w", name, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("network registry: %s: %w", name, err)
	}
	return nil
}

// writeFiles rewrites the hosts and resolv.conf files of every attached
// container.
func (r *registry) writeFiles(resolvConf string) error {
	resolv := resolvFile(readResolvConf(resolvConf))
	all := r.attached()
	for _, e := range all {
		if err := r.writeInPlace(e.Name+".hosts", hostsFile(e, all)); err != nil {
			return err
		}
		if err := r.writeInPlace(e.Name+".resolv", resolv); err != nil {
			return err
		}
	}
	return nil
}

// WatchResolvConf rewrites the containers' resolv.conf whenever the
// appliance's changes (a DHCP lease naming other servers), until the
// returned stop is called: inotify on its directory, for the file
// written in place or renamed over. A panic in the watcher stops it,
// reported through Warn, and leaves berth running.
func (n *Network) WatchResolvConf() (stop func(), err error) {
	path := n.resolvConf()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a pending Read
	go func() {
		err := safe.Call("watch "+path, func() error {
			n.watchResolvConf(f, path)
			return nil
		})
		if err != nil {
			n.warn("%v; no longer watched", err)
		}
	}()
	return func() { f.Close() }, nil
}

// watchHook, when set (tests), runs in watchResolvConf for each change
// of the file before the rewrite.
var watchHook func()

// watchResolvConf reads f's inotify events until f is closed, rewriting
// the containers' files whenever path changes.
func (n *Network) watchResolvConf(f *os.File, path string) {
	buf := make([]byte, 4096)
	for {
		k, err := f.Read(buf)
		if err != nil {
			return
		}
		if inotifyNames(buf[:k])[filepath.Base(path)] {
			if watchHook != nil {
				watchHook()
			}
			if err := n.Refresh(); err != nil {
				n.warn("%s changed: %v", path, err)
			}
		}
	}
}

// inotifyNames returns the names of the inotify events in b.
func inotifyNames(b []byte) map[string]bool {
	names := map[string]bool{}
	for len(b) >= unix.SizeofInotifyEvent {
		l := int(binary.NativeEndian.Uint32(b[12:16]))
		if unix.SizeofInotifyEvent+l > len(b) {
			break
		}
		names[strings.TrimRight(string(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l]), "\x00")] = true
		b = b[unix.SizeofInotifyEvent+l:]
	}
	return names
}

// Refresh rewrites every attached container's hosts and resolv.conf
// files (and drops what killed berths left).
func (n *Network) Refresh() error {
	_, err := n.update(func(*registry) error { return nil })
	return err
}
