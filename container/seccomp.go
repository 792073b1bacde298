package container

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// SeccompCacheDir holds compiled seccomp filters, so that a short-lived
// berth run does not parse and compile the same profile on every start
// (a few milliseconds on a fast machine, ten times that on a small board).
// A filter read from it goes into every later container: berth uses it
// only if the directory is a real directory (no symlink on the way) owned
// by root with mode 0700, and a file only if it is a regular root-owned
// file whose checksum holds and whose name carries the identity of the
// running berth binary, so a filter left by another build is never used.
var SeccompCacheDir = "/run/berth/seccomp"

// filters caches compiled filters in memory by profile digest, arch,
// capabilities and kernel: PID 1 compiles each once.
var filters = filterCache{m: map[string]compiledFilter{}}

// A compiledFilter is a profile made ready for a start: its program (nil
// for unconfined), the SECCOMP_FILTER_FLAG_* bits of its flags, and the
// system call names no ABI berth knows has, which it skipped.
type compiledFilter struct {
	prog    []unix.SockFilter
	flags   uint
	unknown []string
}

// maxCachedFilters bounds the filters kept, in memory and on disk: a
// config has few distinct (profile, capabilities) pairs, but reloads with
// ever new profiles, or berth upgrades (the disk key holds the binary's
// identity), must not grow PID 1 or /run without end.
const maxCachedFilters = 64

// filterCache is a map of at most maxCachedFilters filters; a store into
// a full cache drops another entry first (a dropped filter only costs a
// recompile).
type filterCache struct {
	mu sync.Mutex
	m  map[string]compiledFilter
}

func (c *filterCache) Load(key string) (compiledFilter, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[key]
	return f, ok
}

func (c *filterCache) Store(key string, prog compiledFilter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= maxCachedFilters {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = prog
}

func (c *filterCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func (c *filterCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// seccompFilter compiles the seccomp profile named by spec ("" or
// "default", "unconfined", or a file) for this architecture and the
// container's capabilities. Unconfined gives no program. Only a filter
// without flags or unknown names is cached on disk: a cached file holds
// nothing else (the memory cache holds all three).
func seccompFilter(profile string, caps []string) (compiledFilter, error) {
	if profile == "unconfined" {
		return compiledFilter{}, nil
	}
	var data []byte
	var sum [sha256.Size]byte
	if profile == "" || profile == "default" {
		// Most containers: the program compiled at build time.
		if k, err := seccomp.RunningKernel(); err == nil {
			if prog, ok := seccomp.DefaultProgram(caps, k); ok {
				return compiledFilter{prog: prog}, nil
			}
		}
		sum = seccomp.DefaultSum()
	} else {
		f, err := os.Open(profile)
		if err != nil {
			return compiledFilter{}, fmt.Errorf("seccomp profile: %w", err)
		}
		// Parse refuses what is larger.
		data, err = io.ReadAll(io.LimitReader(f, seccomp.MaxProfileSize+1))
		f.Close()
		if err != nil {
			return compiledFilter{}, fmt.Errorf("seccomp profile %s: %w", profile, err)
		}
		sum = sha256.Sum256(data)
	}
	key := filterKey(sum, caps)
	if f, ok := filters.Load(key); ok {
		return f, nil
	}
	if prog, ok := readFilter(key); ok {
		f := compiledFilter{prog: prog}
		filters.Store(key, f)
		return f, nil
	}
	if data == nil {
		data = seccomp.DefaultJSON()
	}
	f, err := compileProfile(data, caps)
	if err != nil {
		return compiledFilter{}, fmt.Errorf("seccomp profile %s: %w", profileName(profile), err)
	}
	filters.Store(key, f)
	if f.flags == 0 && len(f.unknown) == 0 {
		writeFilter(key, f.prog)
	}
	return f, nil
}

// compileProfile parses and compiles the profile data for this
// architecture and caps.
func compileProfile(data []byte, caps []string) (compiledFilter, error) {
	p, err := seccomp.Parse(data)
	if err != nil {
		return compiledFilter{}, err
	}
	var f compiledFilter
	if f.prog, err = p.Compile(runtime.GOARCH, caps); err != nil {
		return compiledFilter{}, err
	}
	if f.flags, err = p.FilterFlags(); err != nil {
		return compiledFilter{}, err
	}
	if f.unknown, err = p.UnknownSyscalls(seccomp.Target{Arch: runtime.GOARCH, Caps: caps}); err != nil {
		return compiledFilter{}, err
	}
	return f, nil
}

// cloneGuardInit computes cloneGuard's value, once.
func cloneGuardInit() ([]unix.SockFilter, error) {
	return seccomp.CloneGuard(runtime.GOARCH)
}

// cloneGuardOnce holds its result: a sync.OnceValues variable would be init
// code run in every berth process; a sync.Once is data.
var cloneGuardOnce struct {
	sync.Once
	v   []unix.SockFilter
	err error
}

// cloneGuard is the clone guard of this architecture, which every exec
// stacks (exec.go); compiled once, it stays referenced for good.
func cloneGuard() ([]unix.SockFilter, error) {
	cloneGuardOnce.Do(func() { cloneGuardOnce.v, cloneGuardOnce.err = cloneGuardInit() })
	return cloneGuardOnce.v, cloneGuardOnce.err
}

// maxNamedUnknown bounds the names a warning lists.
const maxNamedUnknown = 20

// warning is what a start says of f, the filter of profile: the unknown
// system calls it skipped; "" when there are none.
func (f compiledFilter) warning(profile string) string {
	if len(f.unknown) == 0 {
		return ""
	}
	names := f.unknown
	more := ""
	if len(names) > maxNamedUnknown {
		more = fmt.Sprintf(" and %d more", len(names)-maxNamedUnknown)
		names = names[:maxNamedUnknown]
	}
	return fmt.Sprintf("seccomp profile %s: %d unknown system calls skipped (berth's tables do not have them): %s%s",
		profileName(profile), len(f.unknown), strings.Join(names, ", "), more)
}

// filterKey names the filter of a profile, by its SHA-256 sum, for this
// architecture, the capabilities, the kernel and the running berth binary.
func filterKey(profileSum [sha256.Size]byte, caps []string) string {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%x\x00%s\x00%s\x00%s\x00%s", profileSum, runtime.GOARCH,
		strings.Join(caps, ","), unix.ByteSliceToString(uts.Release[:]), binaryID())))
	return hex.EncodeToString(sum[:16])
}

func profileName(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

// binaryIDInit computes binaryID's value, once.
func binaryIDInit() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// binaryIDOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var binaryIDOnce struct {
	sync.Once
	v string
}

// binaryID identifies the running berth binary by its file's device,
// inode, size and change times: an upgrade, or any rewrite, changes it.
func binaryID() string {
	binaryIDOnce.Do(func() { binaryIDOnce.v = binaryIDInit() })
	return binaryIDOnce.v
}

// A cached filter is the SHA-256 of its key and instructions, then the
// instructions, 8 bytes each, little endian.

// maxFilterFile is the size of the largest filter the kernel loads.
const maxFilterFile = sha256.Size + 8*4096

// openCacheDir opens SeccompCacheDir if it is a real directory owned by
// root and accessible to root only; with create, it is made first.
func openCacheDir(create bool) (int, error) {
	if create {
		if err := os.MkdirAll(SeccompCacheDir, 0o700); err != nil {
			return -1, err
		}
	}
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(unix.AT_FDCWD, SeccompCacheDir, &how)
	if err != nil {
		return -1, err
	}
	if _, err := checkOwned(fd, unix.S_IFDIR); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// checkOwned checks that fd is of the type typ, owned by root and
// inaccessible to anyone else, and returns its size.
func checkOwned(fd int, typ uint32) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != typ || st.Uid != 0 || st.Mode&0o077 != 0 {
		return 0, errors.New("not berth's: wrong type, owner or mode")
	}
	return st.Size, nil
}

func filterSum(key string, code []byte) [sha256.Size]byte {
	return sha256.Sum256(append([]byte(key+"\x00"), code...))
}

func readFilter(key string) ([]unix.SockFilter, bool) {
	dir, err := openCacheDir(false)
	if err != nil {
		return nil, false
	}
	defer unix.Close(dir)
	// Checked through an O_PATH handle, which opens nothing, then read
	// through it: no symlink, FIFO or device node is ever opened.
	h, err := unix.Openat(dir, key+".bpf", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(h)
	size, err := checkOwned(h, unix.S_IFREG)
	if err != nil || size > maxFilterFile {
		return nil, false
	}
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(h))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	// One byte more than the file had: a file that grew since is refused.
	data := make([]byte, size+1)
	n, _ := io.ReadFull(f, data)
	data = data[:n]
	if n <= sha256.Size || n > maxFilterFile || (n-sha256.Size)%8 != 0 {
		return nil, false
	}
	code := data[sha256.Size:]
	if sum := filterSum(key, code); string(sum[:]) != string(data[:sha256.Size]) {
		return nil, false
	}
	prog, err := seccomp.DecodeProgram(code)
	return prog, err == nil
}

// writeFilter stores prog atomically; a failure only costs a recompile.
func writeFilter(key string, prog []unix.SockFilter) {
	code := seccomp.EncodeProgram(prog)
	sum := filterSum(key, code)
	dir, err := openCacheDir(true)
	if err != nil {
		return
	}
	defer unix.Close(dir)
	pruneFilters(dir)
	tmp := fmt.Sprintf(".tmp-%s-%d", key, os.Getpid())
	fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(append(sum[:], code...))
	if cerr := f.Close(); err == nil && cerr == nil {
		err = unix.Renameat(dir, tmp, dir, key+".bpf")
	}
	if err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
	}
}

// pruneFilters empties the cache directory dir (an fd) when it holds
// maxCachedFilters entries or more, before one more is written: stale
// filters of an earlier binary or kernel go, and the directory stays
// bounded; the filters in use are written again at their next compile.
func pruneFilters(dir int) {
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(dir))
	if err != nil {
		return
	}
	defer f.Close()
	names, err := f.Readdirnames(maxCachedFilters + 1)
	if err != nil || len(names) < maxCachedFilters {
		return
	}
	for {
		for _, name := range names {
			_ = unix.Unlinkat(dir, name, 0)
		}
		if names, err = f.Readdirnames(256); err != nil || len(names) == 0 {
			return
		}
	}
}
