package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock confines a container's filesystem access beyond its mounts: a
// path of neither list, nor under one, can be neither read nor written
// (Landlock, Linux 5.13+). Paths are the container's, absolute.
type Landlock struct {
	// Read are trees the workload may read and execute.
	Read []string `json:"read,omitempty"`
	// Write are trees the workload may read, execute and change: write,
	// create, remove, rename into, truncate, and use devices' ioctls.
	Write []string `json:"write,omitempty"`
	// BestEffort runs the container without Landlock on a kernel that
	// has none, instead of failing its start.
	BestEffort bool `json:"best_effort,omitempty"`
}

// MaxLandlockPaths is how many paths each of Landlock's lists may hold:
// each is an fd open while the ruleset is built and a rule in the kernel.
const MaxLandlockPaths = 256

// The access rights berth asks Landlock to handle: those of read, and
// those of write (all of the filesystem's). fileRights are those a rule
// on a file (not a directory) may carry.
const (
	landlockRead  = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	landlockWrite = landlockRead | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM | unix.LANDLOCK_ACCESS_FS_REFER |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	landlockFileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// landlockABIRights are the filesystem rights each Landlock ABI version
// knows: 1 up to MAKE_SYM, 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV (4, 6
// and 7 add network rules, scopes and logging, not filesystem rights).
func landlockABIRights(abi uintptr) uint64 {
	switch {
	case abi >= 5:
		return landlockWrite
	case abi >= 3:
		return landlockWrite &^ unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	case abi == 2:
		return landlockWrite &^ (unix.LANDLOCK_ACCESS_FS_IOCTL_DEV | unix.LANDLOCK_ACCESS_FS_TRUNCATE)
	}
	return landlockWrite &^ (unix.LANDLOCK_ACCESS_FS_IOCTL_DEV | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_REFER)
}

// errNoLandlock is the start's error on a kernel without Landlock.
var errNoLandlock = errors.New("landlock: the kernel has no Landlock (not built, or not in its lsm= list); " +
	"best_effort = true runs the container without it")

// LandlockABI returns the Landlock ABI version of the running kernel, 0
// when it has none.
func LandlockABI() int {
	abi, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(abi)
}

// landlockRuleset builds l's ruleset over the tree whose root is root,
// handling every filesystem right of the kernel's ABI, and returns its
// fd; -1 when the kernel has no Landlock and l is best effort. Each path
// is opened O_PATH inside root (RESOLVE_IN_ROOT: a symlink cannot lead
// out of the container), and the rule goes on what was opened.
func landlockRuleset(l *Landlock, root int) (int, error) {
	abi := LandlockABI()
	if abi == 0 {
		if l.BestEffort {
			return -1, nil
		}
		return -1, errNoLandlock
	}
	handled := landlockABIRights(uintptr(abi))
	// Only the first field, which every ABI knows: no network rules, no
	// scopes. The ruleset's fd is close-on-exec.
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr.Handled_access_fs), 0)
	if e != 0 {
		return -1, fmt.Errorf("landlock: create ruleset (ABI %d): %w", abi, e)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(int(fd))
		}
	}()
	for _, list := range []struct {
		key    string
		paths  []string
		rights uint64
	}{{"read", l.Read, landlockRead}, {"write", l.Write, landlockWrite}} {
		for _, p := range list.paths {
			if err := landlockAllow(int(fd), root, p, list.rights&handled); err != nil {
				return -1, fmt.Errorf("landlock %s path %s: %w", list.key, p, err)
			}
		}
	}
	ok = true
	return int(fd), nil
}

// landlockAllow adds the rule granting rights beneath p (a file: the
// rights a file can carry) to ruleset.
func landlockAllow(ruleset, root int, p string, rights uint64) error {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(root, p, &how)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		rights &= landlockFileRights
	}
	rule := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(fd)}
	if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
		return fmt.Errorf("add rule: %w", e)
	}
	return nil
}

// sendRuleset hands berth, on the init's socket sockFd, the ruleset
// (-1: none) the workload is about to be confined to, for the
// container's execs (recvRuleset), and closes the socket.
func sendRuleset(sockFd, ruleset int) error {
	if sockFd <= 2 {
		return errors.New("landlock: no socket to hand berth the ruleset on")
	}
	defer unix.Close(sockFd)
	var rights []byte
	if ruleset >= 0 {
		rights = unix.UnixRights(ruleset)
	}
	if err := unix.Sendmsg(sockFd, []byte{'l'}, rights, nil, 0); err != nil {
		return fmt.Errorf("landlock: hand berth the ruleset: %w", err)
	}
	return nil
}

// recvRuleset receives on sock the ruleset a spawned init confines the
// container's first process to (sendRuleset), which its execs are
// confined to as well: nil when there is none, which only l best effort
// on a kernel without Landlock may have.
func recvRuleset(sock *os.File, l *Landlock) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("landlock: receive the ruleset from the container's init: %w", err)
	}
	if n == 0 && oobn == 0 {
		return nil, errors.New("landlock: the container's init ended before it sent its ruleset")
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		fds, _ = unix.ParseUnixRights(&msgs[0])
	}
	if n == 1 && len(fds) == 0 && l.BestEffort && LandlockABI() == 0 {
		return nil, nil
	}
	if n != 1 || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("landlock: the container's init handed berth no ruleset")
	}
	f := os.NewFile(uintptr(fds[0]), "landlock ruleset")
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fds[0]))
	if err != nil || link != "anon_inode:[landlock-ruleset]" {
		f.Close()
		return nil, fmt.Errorf("landlock: the container's init handed berth %q, not a ruleset (%v)", link, err)
	}
	return f, nil
}

// landlockRestrict confines the calling thread to ruleset, for the
// container's init (the direct start's child does it raw, child.go).
func landlockRestrict(ruleset int) error {
	if ruleset < 0 {
		return nil
	}
	if _, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); e != 0 {
		return fmt.Errorf("landlock: restrict: %w", e)
	}
	return nil
}

// landlock checks each list: at most MaxLandlockPaths paths, each
// absolute, clean and without NUL.
func (c *specCheck) landlock(l *Landlock) {
	if l == nil {
		return
	}
	for _, list := range []struct {
		key   string
		paths []string
	}{{"landlock.read", l.Read}, {"landlock.write", l.Write}} {
		if len(list.paths) > MaxLandlockPaths {
			c.add(list.key, -1, "%d paths: at most %d", len(list.paths), MaxLandlockPaths)
			continue
		}
		for i, p := range list.paths {
			if !path.IsAbs(p) || path.Clean(p) != p || len(p) >= unix.PathMax || strings.IndexByte(p, 0) >= 0 {
				c.add(list.key, i, "want an absolute, clean path (no \"..\", \".\" or \"//\"), got %s", Quote(p))
			}
		}
	}
}
