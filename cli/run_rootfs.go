package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"berth/boot"
	"berth/container"
	"berth/image"
)

// runDirPrefix names berth run's temporary directories: berth-run-PID-*,
// so that the next berth run removes those of runs killed before they
// could (kill -9), as it removes their cgroups.
const runDirPrefix = "berth-run-"

// rootfsDir returns ROOTFS as a directory, with what its image says
// about running it: a directory itself (it says nothing), or an image
// (a file, an OCI layout, PATH:REF) unpacked into a fresh temporary
// directory that cleanup removes. For user namespace ns, an image's
// private tree that cannot be idmapped (tmpfs before Linux 6.3) has its
// owners shifted. progress, when not nil, shows the unpack's progress.
func rootfsDir(path string, ns *container.UserNS, progress io.Writer) (dir string, ic image.Config, cleanup func(), err error) {
	if isPlainDir(path) {
		return path, ic, func() {}, nil
	}
	removeStaleRunDirs(os.TempDir())
	tmp, err := os.MkdirTemp("", runDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", ic, nil, fmt.Errorf("rootfs: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "rootfs")
	st, err := image.Unpack(path, dir, image.UnpackOptions{Progress: progress})
	if err == nil && ns != nil && (os.Getenv(boot.NoIDMapEnv) == "1" || container.CanIDMap(dir, ns) != nil) {
		err = image.ShiftTree(dir, boot.IDShift(ns))
	}
	if err != nil {
		cleanup()
		return "", ic, nil, err
	}
	return dir, st.Config, cleanup, nil
}

// isImage reports whether ROOTFS names an image, whose config may give
// the command: an existing file or OCI layout, or PATH:REF of one.
func isImage(rootfs string) bool {
	for p := rootfs; ; {
		if _, err := os.Stat(p); err == nil {
			return p != rootfs || !isPlainDir(p)
		}
		i := strings.LastIndexByte(p, ':')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// isPlainDir reports whether path is a directory that is not an OCI
// image layout: a root filesystem as it is.
func isPlainDir(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	_, err = os.Stat(filepath.Join(path, "oci-layout"))
	return err != nil
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
