package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setupPTY gives the init a new pseudo-terminal from the container's own
// devpts, of cfg's size: the slave becomes its controlling terminal and
// stdio, the master goes to the parent over the pty socket. Called after
// pivot_root, so /dev/ptmx is the container's.
func setupPTY(cfg initConfig) error {
	spec := cfg.Spec
	master, slave, err := openPTY(spec.User.UID, spec.User.GID, cfg.winsize())
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close()
	sock := os.NewFile(uintptr(cfg.PTYFd), "pty socket")
	defer sock.Close()
	if err := unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("pty as stdio: %w", err)
		}
	}
	return nil
}

// winsize is the size of the workload's terminal.
func (cfg initConfig) winsize() *unix.Winsize {
	return &unix.Winsize{Row: cfg.PTYRows, Col: cfg.PTYCols}
}

// openPTY opens a new pseudo-terminal of the devpts at /dev/pts, of size
// ws, the slave owned by uid and gid. The caller's root must be the
// container's.
func openPTY(uid, gid uint32, ws *unix.Winsize) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	// Sized before the workload runs: a resize by berth run once it runs
	// would come after the workload's first look (stty size: 0 0).
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return nil, nil, fmt.Errorf("set pty size: %w", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := unix.Fchown(int(slave.Fd()), int(uid), int(gid)); err != nil {
		slave.Close()
		return nil, nil, fmt.Errorf("chown %s: %w", name, err)
	}
	return master, slave, nil
}

// recvFd receives one file descriptor sent with SCM_RIGHTS.
func recvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, errors.New("the container's init ended before it sent the terminal")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no fd in message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no fd in message: %v", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty master"), nil
}
