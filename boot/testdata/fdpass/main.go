// Command fdpass hands a container's stdout to a process of another
// container, over a unix socket on a mount both share (SCM_RIGHTS), for
// TestOutputHandedOn:
//
//	fdpass send SOCKET    listens on SOCKET, hands its stdout to the first
//	                      to connect, waits for its word and exits
//	fdpass relay SOCKET   connects to SOCKET, takes the stdout handed and
//	                      writes "relayed N" lines into it until a write
//	                      fails, then says so on its own stdout and stays
package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fdpass send|relay SOCKET")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(os.Args[2])
	case "relay":
		err = relay(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fdpass:", err)
		os.Exit(1)
	}
}

func send(path string) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	fmt.Println("sender: listening")
	c, err := l.AcceptUnix()
	if err != nil {
		return err
	}
	if _, _, err := c.WriteMsgUnix([]byte{1}, unix.UnixRights(1), nil); err != nil {
		return err
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return err
	}
	fmt.Println("sender: handed over, exiting")
	return nil
}

func relay(path string) error {
	var c *net.UnixConn
	for {
		var err error
		if c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		return err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("control messages: %d, %v", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("rights: %v, %v", fds, err)
	}
	out := os.NewFile(uintptr(fds[0]), "handed")
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	fmt.Println("relay: writing into the stdout handed")
	n := 0
	for ; ; n++ {
		if _, err = fmt.Fprintf(out, "relayed %d\n", n); err != nil {
			break
		}
	}
	fmt.Printf("relay ended after %d lines: %v\n", n, err)
	for {
		time.Sleep(time.Hour)
	}
}
