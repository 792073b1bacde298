package container

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// SeccompCacheDir holds compiled seccomp filters, so that a short-lived
// berth run does not parse and compile the same profile on every start.
// It is on /run (a tmpfs, root only): a filter is only as trustworthy as
// the directory it is read from.
var SeccompCacheDir = "/run/berth/seccomp"

// filters caches compiled filters in memory by profile digest, arch,
// capabilities and kernel: PID 1 compiles each once.
var filters sync.Map // string -> []unix.SockFilter

// seccompFilter compiles the seccomp profile named by spec ("" or
// "default", "unconfined", or a file) for this architecture and the
// container's capabilities. Unconfined gives nil.
func seccompFilter(profile string, caps []string) ([]unix.SockFilter, error) {
	if profile == "unconfined" {
		return nil, nil
	}
	var data []byte
	if profile == "" || profile == "default" {
		data = seccomp.DefaultJSON()
	} else {
		var err error
		if data, err = os.ReadFile(profile); err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%x\x00%s\x00%s\x00%s", sha256.Sum256(data), runtime.GOARCH,
		strings.Join(caps, ","), unix.ByteSliceToString(uts.Release[:]))))
	key := hex.EncodeToString(sum[:16])
	if f, ok := filters.Load(key); ok {
		return f.([]unix.SockFilter), nil
	}
	cacheFile := filepath.Join(SeccompCacheDir, key+".bpf")
	if prog, ok := readFilter(cacheFile); ok {
		filters.Store(key, prog)
		return prog, nil
	}
	p, err := seccomp.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", profileName(profile), err)
	}
	prog, err := p.Compile(runtime.GOARCH, caps)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", profileName(profile), err)
	}
	filters.Store(key, prog)
	writeFilter(cacheFile, prog)
	return prog, nil
}

func profileName(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

// A cached filter is its instructions, 8 bytes each, little endian.

func readFilter(path string) ([]unix.SockFilter, bool) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 || len(data)%8 != 0 || len(data)/8 > 4096 {
		return nil, false
	}
	prog := make([]unix.SockFilter, len(data)/8)
	for i := range prog {
		b := data[8*i:]
		prog[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	return prog, true
}

// writeFilter stores prog atomically; a failure only costs a recompile.
func writeFilter(path string, prog []unix.SockFilter) {
	data := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := data[8*i:]
		binary.LittleEndian.PutUint16(b, in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[4:], in.K)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil && cerr == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}
