package boot

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"berth/container"
	"berth/image"
)

// supervisor starts the configured containers and follows them until all
// have exited or a signal asks for a shutdown. It runs on one goroutine:
// signals, exits (through the reaper) and panics of other goroutines all
// arrive as events on its loop.
type supervisor struct {
	b       *booter
	running map[string]*running
	// failed is set when a container could not start or exited non-zero.
	failed bool
}

// running is one started container.
type running struct {
	c    *container.Container
	exit *container.Exit // set once it has exited
}

func newSupervisor(b *booter) *supervisor {
	return &supervisor{b: b, running: map[string]*running{}}
}

// startAll prepares and starts each container in config order. A container
// that cannot start is reported and does not keep the others from starting.
func (s *supervisor) startAll() {
	for _, cc := range s.b.cfg.Container {
		if err := s.start(cc); err != nil {
			s.failed = true
			s.b.log.Printf("container %s: %v", cc.Name, err)
		}
	}
}

// start unpacks cc's image and starts the container with its output
// captured into the log.
func (s *supervisor) start(cc ContainerConfig) error {
	rootfs, err := s.prepareRootfs(cc)
	if err != nil {
		return err
	}
	spec := cc.Spec(rootfs)
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer w.Close()
	run := &running{}
	err = s.b.reaper.start(func() (int, error) {
		c, err := container.Start(s.b.cgroups, spec, container.Options{
			Stdout: w, Stderr: w, ExternalReaper: true,
		})
		if err != nil {
			return 0, err
		}
		run.c = c
		return c.Pid, nil
	}, func(ws syscall.WaitStatus) { s.exited(cc.Name, ws) })
	if err != nil {
		r.Close()
		return err
	}
	s.running[cc.Name] = run
	s.b.log.Printf("container %s started: pid %d, %s", cc.Name, run.c.Pid, describeLimits(spec.Limits))
	s.b.goSafe(func() { s.copyOutput(cc.Name, r) })
	return nil
}

// prepareRootfs unpacks cc's image into a fresh directory under the state
// directory.
func (s *supervisor) prepareRootfs(cc ContainerConfig) (string, error) {
	img := s.b.cfg.ImagePath(cc)
	dir := filepath.Join(s.b.opts.StateDir, "containers", cc.Name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clear %s: %w", dir, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	st, err := image.Unpack(img, rootfs, image.UnpackOptions{})
	if err != nil {
		return "", err
	}
	s.b.log.Printf("image %s unpacked for %s: %d entries, %s in %s",
		img, cc.Name, st.Entries, container.FormatSize(st.Bytes), st.Elapsed.Round(time.Microsecond))
	return rootfs, nil
}

// copyOutput logs each line the container writes, until every writer
// (the container and its children) has closed the pipe.
func (s *supervisor) copyOutput(name string, r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		s.b.log.Output(name, sc.Text())
	}
}

// exited is the reaper's callback for a container's first process.
func (s *supervisor) exited(name string, ws syscall.WaitStatus) {
	run := s.running[name]
	if run == nil {
		return
	}
	exit, err := run.c.Exited(ws)
	run.exit = &exit
	if err != nil {
		s.b.log.Printf("container %s: clean up: %v", name, err)
	}
	if exit.Status() != 0 {
		s.failed = true
	}
	s.b.log.Printf("%s after %s", exit, exit.Runtime.Round(time.Millisecond))
}

// alive counts the containers that have not exited.
func (s *supervisor) alive() int {
	n := 0
	for _, r := range s.running {
		if r.exit == nil {
			n++
		}
	}
	return n
}

// loop handles events until every container has exited (power off) or a
// signal asks for a shutdown. It returns the action and berth boot's
// exit status.
func (s *supervisor) loop() (Action, int) {
	s.b.reaper.reap() // children that exited before the loop started
	for s.alive() > 0 {
		select {
		case sig := <-s.b.sigs:
			if sig == syscall.SIGCHLD {
				s.b.reaper.reap()
				continue
			}
			if action, ok := shutdownSignal(sig); ok {
				s.b.log.Printf("got %s: shutting down (%s)", sig, action)
				return action, s.status()
			}
		case err := <-s.b.fatal:
			s.b.log.Printf("FATAL: %v", err)
			return PowerOff, 1
		}
	}
	s.b.log.Printf("all containers have exited")
	return PowerOff, s.status()
}

func (s *supervisor) status() int {
	if s.failed {
		return 1
	}
	return 0
}

// stopAll sends SIGKILL to whatever containers still run and waits, for at
// most timeout, for the reaper to collect them.
func (s *supervisor) stopAll(timeout time.Duration) {
	if s.alive() == 0 {
		return
	}
	for name, r := range s.running {
		if r.exit == nil {
			s.b.log.Printf("stopping container %s", name)
			_ = r.c.Signal(syscall.SIGKILL)
		}
	}
	deadline := time.After(timeout)
	for s.alive() > 0 {
		select {
		case sig := <-s.b.sigs:
			if sig == syscall.SIGCHLD {
				s.b.reaper.reap()
			}
		case <-deadline:
			s.b.log.Printf("%d containers did not stop within %s", s.alive(), timeout)
			return
		}
	}
}

func describeLimits(l container.Limits) string {
	mem, pids := "no memory limit", "no pids limit"
	if l.Memory > 0 {
		mem = "memory " + container.FormatSize(l.Memory)
	}
	if l.Pids > 0 {
		pids = fmt.Sprintf("pids %d", l.Pids)
	}
	return mem + ", " + pids
}
