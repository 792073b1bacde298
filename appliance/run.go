package appliance

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// VM is a running QEMU. It learns how the guest ended from QEMU's QMP
// SHUTDOWN event, on a socket of its own — with -no-reboot QEMU exits 0
// both when the guest powers off and when it resets — and whether berth
// failed from the console.
type VM struct {
	proc    *spawned
	dir     string // holds the QMP socket
	console *consoleWatch
	reason  string // of the first SHUTDOWN event
	err     error  // QEMU's, once done is closed
	done    chan struct{}
}

// Exit is how a guest ended.
type Exit struct {
	// Reason is QEMU's reason for shutting down: "guest-shutdown" (the
	// guest powered off), "guest-reset" (it rebooted, or the kernel
	// panicked — panic=-1 — or a watchdog reset it), "host-signal",
	// "host-ui"; "" when QEMU ended without saying. The RISC-V virt
	// machine of QEMU 7.2 powers off by ending QEMU with status 0 and no
	// event: after the kernel's "reboot: Power down" line, that is
	// "guest-shutdown" too.
	Reason string
	// Fatal is the console line of berth's fatal error, if it logged one;
	// Panic the kernel's panic line, if it panicked.
	Fatal, Panic string
	// TimedOut says Wait killed QEMU when its time was up.
	TimedOut bool
}

// PoweredOff reports whether the guest powered itself off: QEMU saw the
// power-off, and berth logged no fatal error before it (berth.panic=
// poweroff ends a failed boot in a power-off too).
func (e Exit) PoweredOff() bool {
	return e.Reason == "guest-shutdown" && e.Fatal == "" && e.Panic == "" && !e.TimedOut
}

// String says how the guest ended, for a person.
func (e Exit) String() string {
	switch {
	case e.TimedOut:
		return "no shutdown in time: QEMU killed"
	case e.Panic != "":
		return "the kernel panicked: " + e.Panic
	case e.Fatal != "" && e.Reason == "guest-shutdown":
		return "berth failed, then powered off: " + e.Fatal
	case e.Fatal != "":
		return "berth failed: " + e.Fatal
	case e.Reason == "guest-shutdown":
		return "the appliance powered off"
	case e.Reason == "guest-reset":
		return "the appliance rebooted (or its watchdog reset it)"
	case e.Reason != "":
		return "QEMU ended (" + e.Reason + ")"
	}
	return "QEMU ended without the guest shutting down"
}

// Start starts QEMU with args (see QEMU.Args) and QMP on a socket of its
// own, the guest's console (QEMU's stdout) on console, QEMU's stdin and
// stderr on stdin and stderr. QEMU is killed should the calling process
// die.
func Start(args []string, stdin io.Reader, console, stderr io.Writer) (*VM, error) {
	dir, err := os.MkdirTemp("", "berth-qemu-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// QEMU connects to the socket as it starts, before the guest runs.
	args = append(args[:len(args):len(args)], "-qmp", "unix:"+sock)
	v := &VM{dir: dir, console: &consoleWatch{w: console}, done: make(chan struct{})}
	events := make(chan struct{})
	go func() {
		defer close(events)
		v.readEvents(ln)
	}()
	started := make(chan error)
	go v.run(args, stdin, stderr, ln, events, started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	return v, nil
}

// run starts QEMU and waits for it on one locked thread: Pdeathsig is
// sent when the thread that started the child exits.
func (v *VM) run(args []string, stdin io.Reader, stderr io.Writer, ln net.Listener, events <-chan struct{}, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	v.proc, err = spawn(args, stdin, v.console, stderr)
	started <- err
	if err == nil {
		err = v.proc.wait()
	}
	ln.Close() // QEMU never connected: stop waiting for it
	<-events
	os.RemoveAll(v.dir)
	v.err = err
	close(v.done)
}

// readEvents accepts QEMU's QMP connection and records the reason of the
// first SHUTDOWN event until QEMU closes it.
func (v *VM) readEvents(ln net.Listener) {
	conn, err := ln.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // the greeting
		return
	}
	if _, err := io.WriteString(conn, `{"execute":"qmp_capabilities"}`+"\n"); err != nil {
		return
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var ev struct {
			Event string `json:"event"`
			Data  struct {
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if json.Unmarshal(line, &ev) == nil && ev.Event == "SHUTDOWN" && v.reason == "" {
			v.reason = ev.Data.Reason
		}
	}
}

// Wait waits for QEMU to exit, killing it once timeout has passed (0:
// never), and says how the guest ended. The error is QEMU's: it could not
// run, or exited with a failure; killed at the timeout is no error.
func (v *VM) Wait(timeout time.Duration) (Exit, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	timedOut := false
	select {
	case <-v.done:
	case <-expired:
		timedOut = true
		_ = v.Kill()
		<-v.done
	}
	exit := Exit{Reason: v.reason, Fatal: v.console.fatal, Panic: v.console.panic, TimedOut: timedOut}
	if timedOut {
		return exit, nil
	}
	if exit.Reason == "" && v.err == nil && v.console.powerDown {
		exit.Reason = "guest-shutdown"
	}
	return exit, v.err
}

// Signal sends QEMU a signal: SIGTERM ends it as a host would
// ("host-signal").
func (v *VM) Signal(sig os.Signal) error {
	err := v.proc.proc.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Kill kills QEMU.
func (v *VM) Kill() error { return v.Signal(os.Kill) }
