package board

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The registry of the bridge network: a directory (default
// /run/berth/net, root's, 0700) shared by every berth process on the
// host. Each attached container has NAME.entry (its entry), NAME.hosts
// and NAME.resolv (the files bind-mounted into it); bridge.state records
// what berth added to the host (netentry.go has their format). Every change happens under an flock of its
// lock file, and each entry names the berth process that owns it (pid
// and start time), so the next berth to take the lock drops the entries
// of one that was killed.

// Limits of what the registry holds: an entry is a few hundred bytes.
const (
	maxEntrySize = 64 << 10
	maxEntries   = 4096
)

// entry is one container attached to the bridge, or holding its address
// between two runs.
type entry struct {
	Name     string
	Owner    owner
	Address  netip.Addr
	Hostname string
	// Attached is set while the container runs; Link names the host end
	// of its veth pair and Ports are published meanwhile.
	Attached bool
	Link     string
	Ports    []Port
}

// bridgeState is bridge.state: present while berth's bridge and table
// exist.
type bridgeState struct {
	Bridge string
	Prefix string
	// Forward is ip_forward's value before berth set it to 1, "" when it
	// was 1 already.
	Forward string
	// Routes says the appliance routes between its own interfaces
	// ([network] router): when berth turned ip_forward on, the table
	// then drops no forwarding outside the bridge. Recorded by berth
	// boot, which has the config; a berth run follows the record.
	Routes bool
	// Rules identifies the rule set last applied (a hash of rulesKey).
	Rules string
}

// owner is a berth process: its pid and its start time (in clock ticks
// since boot), so that a reused pid is not taken for the owner.
type owner struct {
	Pid   int
	Start uint64
}

// self is the calling process as an owner.
func self() (owner, error) {
	pid := os.Getpid()
	start, err := procStart(pid)
	return owner{pid, start}, err
}

// alive reports whether the owner still runs.
func (o owner) alive() bool {
	start, err := procStart(o.Pid)
	return err == nil && start == o.Start
}

// procStart reads a process's start time, field 22 of /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold anything.
	i := strings.LastIndexByte(string(data), ')')
	var fields []string
	if i >= 0 {
		fields = strings.Fields(string(data[i+1:]))
	}
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// registry is the locked registry directory and what it holds.
type registry struct {
	dir     int // the directory's fd
	lock    int // the lock file's fd, flock'ed
	entries map[string]*entry
	state   *bridgeState
	// dirty are entries to write, gone entries to remove.
	dirty, gone map[string]bool
	// stale are the links of entries whose owner is gone, staleAddrs
	// their addresses (their conntrack entries are deleted: flows.go).
	stale      []string
	staleAddrs []netip.Addr
}

// openRegistry creates (0700) or opens dir, refusing one that another
// user could write or that is a symlink, and takes its lock.
func openRegistry(dir string) (*registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("network registry: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("network registry %s: %w", dir, err)
	}
	r := &registry{dir: fd, lock: -1, entries: map[string]*entry{}, dirty: map[string]bool{}, gone: map[string]bool{}}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		r.close()
		return nil, fmt.Errorf("network registry %s: %w", dir, err)
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		r.close()
		return nil, fmt.Errorf("network registry %s: want a directory of uid %d, mode 0700; it has uid %d, mode %#o", dir, os.Geteuid(), st.Uid, st.Mode&0o7777)
	}
	if r.lock, err = unix.Openat(fd, "lock", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err != nil {
		r.close()
		return nil, fmt.Errorf("network registry %s/lock: %w", dir, err)
	}
	for {
		err = unix.Flock(r.lock, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		r.close()
		return nil, fmt.Errorf("network registry %s/lock: %w", dir, err)
	}
	return r, nil
}

// close releases the lock.
func (r *registry) close() {
	if r.lock >= 0 {
		unix.Close(r.lock)
	}
	unix.Close(r.dir)
}

// load reads bridge.state and every entry, dropping (and removing) those
// that cannot be read and those of owners that are gone; self, the
// caller, is alive.
func (r *registry) load(self owner) error {
	if data, err := r.read("bridge.state"); err == nil {
		r.state, _ = parseBridgeState(data)
	} else if !errors.Is(err, unix.ENOENT) {
		return err
	}
	names, err := r.names()
	if err != nil {
		return err
	}
	alive := map[owner]bool{self: true}
	for _, name := range names {
		data, err := r.read(name + ".entry")
		var e *entry
		if err == nil {
			e, err = parseEntry(name, data)
		}
		if err != nil {
			r.gone[name] = true
			continue
		}
		live, known := alive[e.Owner]
		if !known {
			live = e.Owner.alive()
			alive[e.Owner] = live
		}
		if !live {
			if e.Attached && e.Link != "" {
				r.stale = append(r.stale, e.Link)
			}
			if e.Attached && e.Address.IsValid() {
				r.staleAddrs = append(r.staleAddrs, e.Address)
			}
			r.gone[name] = true
			continue
		}
		r.entries[name] = e
	}
	return nil
}

// names lists the entries' names (their NAME.entry files).
func (r *registry) names() ([]string, error) {
	dup, err := unix.Dup(r.dir)
	if err != nil {
		return nil, fmt.Errorf("network registry: %w", err)
	}
	f := os.NewFile(uintptr(dup), "registry")
	defer f.Close()
	var names []string
	for {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			if name, ok := strings.CutSuffix(e.Name(), ".entry"); ok && e.Type().IsRegular() && !strings.HasPrefix(name, ".") {
				names = append(names, name)
			}
		}
		if len(names) > maxEntries {
			return nil, fmt.Errorf("network registry: more than %d entries", maxEntries)
		}
		if err == io.EOF || len(ents) == 0 {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("network registry: %w", err)
		}
	}
}

// read reads a small regular file of the registry without following a
// symlink.
func (r *registry) read(name string) ([]byte, error) {
	fd, err := unix.Openat(r.dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("network registry: %s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err == nil && len(data) > maxEntrySize {
		err = fmt.Errorf("network registry: %s is larger than %d bytes", name, maxEntrySize)
	}
	return data, err
}

// write replaces name with data: a temporary file renamed over it.
func (r *registry) write(name string, data []byte) error {
	tmp := "." + name + ".tmp"
	fd, err := unix.Openat(r.dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("network registry: %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(r.dir, tmp, r.dir, name)
	}
	if err != nil {
		return fmt.Errorf("network registry: %s: %w", name, err)
	}
	return nil
}

// remove removes name, if it is there.
func (r *registry) remove(name string) error {
	if err := unix.Unlinkat(r.dir, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network registry: remove %s: %w", name, err)
	}
	return nil
}

// save writes the changed entries and removes the gone ones with their
// files.
func (r *registry) save() error {
	for name := range r.gone {
		if r.entries[name] != nil {
			continue
		}
		for _, suffix := range []string{".entry", ".hosts", ".resolv"} {
			if err := r.remove(name + suffix); err != nil {
				return err
			}
		}
	}
	for name := range r.dirty {
		e := r.entries[name]
		if e == nil {
			continue
		}
		if err := r.write(name+".entry", e.marshal()); err != nil {
			return err
		}
	}
	return nil
}

// saveState writes bridge.state, or removes it when st is nil.
func (r *registry) saveState(st *bridgeState) error {
	r.state = st
	if st == nil {
		return r.remove("bridge.state")
	}
	return r.write("bridge.state", st.marshal())
}

// put records e as changed.
func (r *registry) put(e *entry) {
	r.entries[e.Name] = e
	r.dirty[e.Name] = true
	delete(r.gone, e.Name)
}

// drop removes the entry name.
func (r *registry) drop(name string) {
	delete(r.entries, name)
	r.gone[name] = true
}

// attached lists the attached entries, by name.
func (r *registry) attached() []*entry {
	var out []*entry
	for _, e := range r.entries {
		if e.Attached {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// allocate picks name's address in the bridge's subnet p: the address a
// hash of the name points at or, when another container or the bridge
// has it, the next free one after it. The same names allocated in the
// same order always get the same addresses.
func allocate(p netip.Prefix, name string, taken map[netip.Addr]bool) (netip.Addr, error) {
	base := p.Masked().Addr().As4()
	first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	hosts := uint32(1)<<(32-p.Bits()) - 2 // without the subnet's and the broadcast address
	h := fnv.New32a()
	h.Write([]byte(name))
	start := h.Sum32() % hosts
	for i := range hosts {
		v := first + 1 + (start+i)%hosts
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if a != p.Addr() && !taken[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s for container %s", p.Masked(), name)
}
