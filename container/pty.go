package container

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setupPTY gives the init a new pseudo-terminal from the container's own
// devpts: the slave becomes its controlling terminal and stdio, the master
// goes to the parent over the pty socket. Called after pivot_root, so
// /dev/ptmx is the container's.
func setupPTY(sockFd int, uid, gid uint32) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer slave.Close()
	if err := unix.Fchown(int(slave.Fd()), int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	sock := os.NewFile(uintptr(sockFd), "pty socket")
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

// recvFd receives one file descriptor sent with SCM_RIGHTS.
func recvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
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
