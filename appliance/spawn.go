package appliance

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// spawned is a started QEMU and the copies of its standard streams.
type spawned struct {
	proc   *os.Process
	copies sync.WaitGroup // of its output, into the writers given
}

// spawn starts args[0], looked up in $PATH, with stdin, stdout and
// stderr as its standard streams: an *os.File is passed as it is, nil is
// /dev/null, another reader or writer is copied through a pipe (as
// os/exec does, which berth does not link for this one use). The child
// gets SIGKILL when the calling thread ends.
func spawn(args []string, stdin io.Reader, stdout, stderr io.Writer) (*spawned, error) {
	prog, err := lookPath(args[0])
	if err != nil {
		return nil, err
	}
	s := &spawned{}
	var files [3]*os.File
	var ours []*os.File // files the child gets copies of
	defer func() {
		for _, f := range ours {
			f.Close()
		}
	}()
	for i, stream := range []any{stdin, stdout, stderr} {
		f, err := s.stream(i, stream)
		if err != nil {
			return nil, err
		}
		files[i] = f
		if _, passed := stream.(*os.File); !passed {
			ours = append(ours, f)
		}
	}
	s.proc, err = os.StartProcess(prog, args, &os.ProcAttr{
		Files: files[:],
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stream returns the file the child gets as its standard stream fd (0,
// 1 or 2) for r, a reader (fd 0) or a writer.
func (s *spawned) stream(fd int, r any) (*os.File, error) {
	switch r := r.(type) {
	case *os.File:
		return r, nil
	case nil:
		if fd == 0 {
			return os.Open(os.DevNull)
		}
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if fd == 0 {
		go func() {
			io.Copy(pw, r.(io.Reader))
			pw.Close()
		}()
		return pr, nil
	}
	s.copies.Add(1)
	go func() {
		defer s.copies.Done()
		io.Copy(r.(io.Writer), pr)
		pr.Close()
	}()
	return pw, nil
}

// wait waits for the child to exit and its output to be copied; an exit
// other than with status 0 is an error.
func (s *spawned) wait() error {
	st, err := s.proc.Wait()
	s.copies.Wait()
	if err == nil && !st.Success() {
		err = fmt.Errorf("%s", st) // "exit status 1", "signal: killed"
	}
	return err
}

// lookPath finds prog as a shell does: a name with a slash as it is,
// another in the directories of $PATH, as an executable regular file.
func lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in $PATH: %w", prog, fs.ErrNotExist)
}
