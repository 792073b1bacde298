package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"berth/image"
)

// runDirPrefix names berth run's temporary directories: berth-run-PID-*,
// so that the next berth run removes those of runs killed before they
// could (kill -9), as it removes their cgroups.
const runDirPrefix = "berth-run-"

// rootfsDir returns ROOTFS as a directory: itself, or an image file
// unpacked into a fresh temporary directory that cleanup removes.
func rootfsDir(path string) (dir string, cleanup func(), err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("rootfs: %w", err)
	}
	if fi.IsDir() {
		return path, func() {}, nil
	}
	removeStaleRunDirs(os.TempDir())
	tmp, err := os.MkdirTemp("", runDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", nil, fmt.Errorf("rootfs: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "rootfs")
	if _, err := image.Unpack(path, dir, image.UnpackOptions{}); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// removeStaleRunDirs removes the berth-run-PID-* directories under tmp
// whose berth run is gone and that belong to this user.
func removeStaleRunDirs(tmp string) {
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), runDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		fi, err := e.Info()
		if st, ok := fi.Sys().(*syscall.Stat_t); err != nil || !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// fileFor returns w as a file the container can write to: w itself when
// it is one, or a pipe copied into w until done is called.
func fileFor(w io.Writer) (f *os.File, done func()) {
	if f, ok := w.(*os.File); ok {
		return f, func() {}
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, func() {}
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(w, r)
		r.Close()
		close(copied)
	}()
	return pw, func() {
		pw.Close()
		<-copied
	}
}
