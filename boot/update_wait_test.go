package boot

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/image"

	"golang.org/x/sys/unix"
)

// hangGuard bounds a wait for what must happen: it fires only when the
// test fails, so it is long enough for a loaded machine (CI's two shared
// cores), never a timing check.
const hangGuard = time.Minute

// fakeLoop runs the parts of the supervisor loop an update's waits rely
// on — the update's calls, the image goroutine's and the pulls' events —
// until the test ends, and then closes loopDone as the loop does.
func fakeLoop(t *testing.T, s *supervisor) {
	t.Helper()
	quit := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer close(s.loopDone)
		for {
			select {
			case f := <-s.calls:
				f()
			case r, ok := <-s.images:
				s.imageDone(r, ok)
			case ev := <-s.pullEvents:
				s.pullDone(ev)
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		select {
		case <-ended:
		case <-time.After(hangGuard): // held by a call that never ends: the failure is reported
		}
	})
}

// loopAnswers fails the test unless the loop runs a call within hangGuard: it
// is not held by an update's wait.
func loopAnswers(t *testing.T, s *supervisor, while string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- s.onLoop(func() {}) }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("the supervisor loop ran nothing for %s while %s", hangGuard, while)
	}
}

// TestApplyWaitsForBootImagesOffLoop: an apply that comes while the
// boot's images are still unpacking waits for them without holding the
// loop — which meanwhile takes images, reaps, answers berth status and
// SIGTERM — says what it waits for, and goes on once they are ready.
func TestApplyWaitsForBootImagesOffLoop(t *testing.T) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{StateDir: t.TempDir()}}
	s := newSupervisor(b, &Config{})
	images := make(chan imageReady)
	s.images, s.imagesBoot = images, true // the boot's unpack under way: nothing sent yet
	fakeLoop(t, s)
	path := filepath.Join(t.TempDir(), "berth.toml")
	if err := os.WriteFile(path, []byte("[[container]]\nname = \"app\"\nimage = \"/nonexistent/app.tar\"\ncommand = [\"true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := &update{kind: updateApply, path: path, reply: make(chan reply, 16), progress: true}
	resolved := make(chan error, 1)
	go func() {
		_, _, release, err := s.resolve(up, path)
		release()
		resolved <- err
	}()
	deadline := time.After(hangGuard)
	for waiting := false; !waiting; {
		select {
		case r := <-up.reply:
			waiting = r.Progress == "waiting for the boot's images to be ready"
		case err := <-resolved:
			t.Fatalf("resolve returned before the boot's images were ready: %v", err)
		case <-deadline:
			t.Fatal("resolve did not say it waits for the boot's images")
		}
	}
	loopAnswers(t, s, "an apply waits for the boot's images")
	select {
	case err := <-resolved:
		t.Fatalf("resolve returned before the boot's images were ready: %v", err)
	default:
	}
	close(images) // the image goroutine has ended
	select {
	case err := <-resolved:
		// It went on to the image: this one does not exist.
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/app.tar") {
			t.Errorf("resolve after the wait: %v, want the missing image named", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("resolve did not go on once the boot's images were ready")
	}
}

// TestApplyWaitEndsAtShutdown: a shutdown while an apply waits for the
// boot's images ends the apply (errShutdown), the record untouched.
func TestApplyWaitEndsAtShutdown(t *testing.T) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1)}
	s := newSupervisor(b, &Config{})
	s.images = make(chan imageReady) // never ends
	quit := make(chan struct{})
	go func() {
		defer close(s.loopDone)
		for {
			select {
			case f := <-s.calls:
				f()
			case <-quit:
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() {
		waited <- s.waitOffLoop(context.Background(), &update{}, "the boot's images", func() bool { return s.images == nil })
	}()
	time.Sleep(3 * offLoopPoll)
	close(quit) // the loop returns: berth shuts down
	select {
	case err := <-waited:
		if err != errShutdown {
			t.Errorf("wait ended with %v, want errShutdown", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("the wait did not end with the loop")
	}
}

// TestApplyCancelledWhenClientHangsUp: a client that hangs up while its
// apply is in phase 1 (here: waiting for the boot's images) ends the
// apply, nothing changed; the control server tells it by closing the
// request's gone (hangUp).
func TestApplyCancelledWhenClientHangsUp(t *testing.T) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{StateDir: t.TempDir()}}
	s := newSupervisor(b, &Config{})
	s.images, s.imagesBoot = make(chan imageReady), true // the boot's unpack, which goes on
	fakeLoop(t, s)
	path := filepath.Join(t.TempDir(), "berth.toml")
	if err := os.WriteFile(path, []byte("[[container]]\nname = \"app\"\nimage = \"/images/app.tar\"\ncommand = [\"true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.gens = &genState{store: &genStore{}, rec: genRecord{Committed: 1}}
	server, client := socketPair(t)
	r := &request{Request: Request{Verb: "apply", Path: path}, reply: make(chan reply, 1), gone: hangUp(server)}
	s.onLoop(func() { s.startUpdate(updateApply, r) })
	select {
	case rep := <-r.reply:
		t.Fatalf("answered while the client was there: %+v", rep.Response)
	case <-time.After(5 * offLoopPoll):
	}
	client.Close() // Ctrl-C on berth apply
	select {
	case rep := <-r.reply:
		if want := "apply refused, nothing changed: " + errClientGone.Error(); rep.Error != want {
			t.Errorf("answer %q, want %q", rep.Error, want)
		}
	case <-time.After(hangGuard):
		t.Fatal("the apply went on waiting after its client hung up")
	}
	deadline := time.Now().Add(hangGuard)
	for updating := true; updating && time.Now().Before(deadline); time.Sleep(offLoopPoll) {
		s.onLoop(func() { updating = b.gens.updating })
		if !updating {
			return
		}
	}
	t.Error("the update was still marked in progress: the next apply would be refused")
}

// TestControlHangUp: the control server gives an apply or reload request
// a gone that closes once its client hangs up, and not before; other
// requests get none.
func TestControlHangUp(t *testing.T) {
	for _, tc := range []struct {
		verb     string
		watching bool
	}{{"apply", true}, {"reload", true}, {"status", false}} {
		t.Run(tc.verb, func(t *testing.T) {
			b := &booter{log: NewLogger(&lockedBuffer{}), requests: make(chan request, 1)}
			srv, cli := socketPair(t)
			go b.serveConn(srv)
			if _, err := cli.Write([]byte(`{"verb":"` + tc.verb + `","path":"/etc/berth.toml"}` + "\n")); err != nil {
				t.Fatal(err)
			}
			var r request
			select {
			case r = <-b.requests:
			case <-time.After(hangGuard):
				t.Fatal("no request reached the supervisor")
			}
			defer func() { r.reply <- reply{} }() // lets serveConn end
			if (r.gone != nil) != tc.watching {
				t.Fatalf("gone %v, want one: %v", r.gone, tc.watching)
			}
			if !tc.watching {
				return
			}
			select {
			case <-r.gone:
				t.Fatal("gone closed while the client was there")
			case <-time.After(5 * offLoopPoll):
			}
			// A client that shuts its writing side after its request
			// (socat, nc -N) still waits for its answer.
			if err := cli.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-r.gone:
				t.Fatal("gone closed when the client shut its writing side only")
			case <-time.After(3 * peerClosedPoll):
			}
			cli.Close()
			select {
			case <-r.gone:
			case <-time.After(hangGuard):
				t.Fatal("gone not closed after the client hung up")
			}
		})
	}
}

// TestEndPullsOffLoop: before a switch, the registry pulls under way are
// cancelled and waited for off the loop; a pull that takes long to stop
// (an unpack under way) holds the update, not the loop; the unit it was
// for stays preparing, so the loop does not start its old definition
// before the switch replaces it — whether the unpack failed on the
// cancel or ended well (its tree is then taken) — and the pull state is
// reset for the pulls the switch starts.
func TestEndPullsOffLoop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		unpack  error
		spec    bool // the unit took the readied tree
		logBans string
	}{
		{name: "cancelled", unpack: context.Canceled, logBans: "canceled"},
		{name: "unpacked", spec: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, console := preparingSupervisor()
			events := make(chan pullEvent)
			s.pullEvents, s.pullsAbandoned = events, make(chan struct{})
			s.pullCtx, s.pullCancel = context.WithCancel(context.Background())
			s.pending = 1
			unpacked := make(chan struct{})
			rootfs := t.TempDir()
			go func(ctx context.Context) {
				<-ctx.Done()
				<-unpacked // the unpack under way finishes first
				events <- pullEvent{ready: imageReady{name: "web", rootfs: rootfs, config: image.Config{Cmd: []string{"true"}}, err: tc.unpack}}
			}(s.pullCtx)
			fakeLoop(t, s)
			up := &update{reply: make(chan reply, 16), progress: true}
			ended := make(chan error, 1)
			go func() { ended <- s.endPulls(up) }()
			select {
			case r := <-up.reply:
				if r.Progress != "waiting for the registry pulls under way to end" {
					t.Errorf("progress %q", r.Progress)
				}
			case <-time.After(hangGuard):
				t.Fatal("endPulls did not say it waits for the pulls")
			}
			loopAnswers(t, s, "an update waits for a pull to end")
			close(unpacked)
			select {
			case err := <-ended:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(hangGuard):
				t.Fatal("endPulls did not return once the pull ended")
			}
			s.onLoop(func() {
				u := s.units["web"]
				if s.pending != 0 || s.pullEvents != nil || s.pullCtx != nil {
					t.Errorf("pending %d, events %v, ctx %v: the pull state was not reset", s.pending, s.pullEvents, s.pullCtx)
				}
				if !u.preparing || u.state == stateFailed || u.lastError != "" {
					t.Errorf("unit web: preparing %v, state %v, error %q: the loop could start or fail the old definition before the switch", u.preparing, u.state, u.lastError)
				}
				if got := u.spec.Rootfs != ""; got != tc.spec {
					t.Errorf("unit web took the readied tree: %v, want %v", got, tc.spec)
				}
			})
			s.b.log.Flush(5 * time.Second)
			if log := console.String(); tc.logBans != "" && strings.Contains(log, tc.logBans) {
				t.Errorf("a pull cancelled for a switch was logged as a failure:\n%s", log)
			}
		})
	}
}

// TestApplyRefusedWhileTrying: while the booted generation waits for its
// check (it runs once the boot's images are ready), apply, reload and
// rollback are refused with why, rather than taking the check's turn.
func TestApplyRefusedWhileTrying(t *testing.T) {
	for _, kind := range []updateKind{updateApply, updateReload, updateRollback} {
		console := &lockedBuffer{}
		b := &booter{log: NewLogger(console), fatal: make(chan error, 1)}
		b.gens = &genState{store: &genStore{}, verify: true, rec: genRecord{Committed: 3, Trying: 4}}
		s := newSupervisor(b, &Config{})
		replies := make(chan reply, 1)
		s.startUpdate(kind, &request{Request: Request{Path: "/etc/berth.toml"}, reply: replies})
		r := <-replies
		if !strings.Contains(r.Error, "generation 4") || !strings.Contains(r.Error, "being tried") {
			t.Errorf("kind %d: answer %q, want a refusal naming generation 4 being tried", kind, r.Error)
		}
		if b.gens.updating {
			t.Errorf("kind %d: an update was started", kind)
		}
	}
}

// TestRollbackTakesRecordAfterBootImages: berth rollback during the boot
// takes the record once the boot's images are ready — when the boot may
// have recorded its config file as a new generation — and goes back one
// from there, not from the record it would have seen before the wait.
func TestRollbackTakesRecordAfterBootImages(t *testing.T) {
	console := &lockedBuffer{}
	state := t.TempDir()
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{StateDir: state}, cfg: &Config{}}
	st, err := openGenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	gen := func(n int) *generation { return &generation{genMeta: genMeta{Number: n}} }
	b.gens = &genState{store: st, rec: genRecord{Committed: 2, Previous: 1},
		cur: gen(2), curCfg: &Config{}, prev: gen(1), prevCfg: &Config{}}
	s := newSupervisor(b, &Config{})
	images := make(chan imageReady)
	s.images, s.imagesBoot = images, true
	fakeLoop(t, s)
	up := &update{kind: updateRollback, reply: make(chan reply, 16), progress: true}
	type answer struct {
		msg string
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		msg, err := s.rollbackByHand(up)
		answered <- answer{msg, err}
	}()
	select {
	case r := <-up.reply:
		if r.Progress != "waiting for the boot's images to be ready" {
			t.Fatalf("progress %q", r.Progress)
		}
	case a := <-answered:
		t.Fatalf("rollback answered before the boot's images were ready: %q, %v", a.msg, a.err)
	case <-time.After(hangGuard):
		t.Fatal("rollback did not wait for the boot's images")
	}
	// What recordFirst does once the images are ready: the boot config
	// file becomes generation 3, committed, 2 before it.
	s.onLoop(func() {
		g := b.gens
		g.rec = genRecord{Committed: 3, Previous: 2}
		g.prev, g.prevCfg, g.cur, g.curCfg = g.cur, g.curCfg, gen(3), &Config{}
	})
	close(images)
	var a answer
	select {
	case a = <-answered:
	case <-time.After(hangGuard):
		t.Fatal("rollback did not end once the boot's images were ready")
	}
	if a.err != nil || a.msg != "rolled back from generation 3 to generation 2" {
		t.Fatalf("rollback: %q, %v; want rolled back from generation 3 to generation 2", a.msg, a.err)
	}
	rec, ok, err := st.readRecord()
	if err != nil || !ok || rec.Committed != 2 || rec.LastRollback == nil || rec.LastRollback.From != 3 {
		t.Errorf("record on disk %+v (ok %v, %v): want committed 2, rolled back from 3", rec, ok, err)
	}
}

// TestSwitchPullsOffLoop: a switch readies its new units' images off the
// loop. Rolling back to a generation whose registry image is not in the
// cache, while the registry accepts connections and answers nothing, once
// held the loop in switchTo for the pull's I/O timeouts (a minute and
// more, no watchdog petted); now switchTo returns at once, the unit
// preparing, its pull on a goroutine of its own.
func TestSwitchPullsOffLoop(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept() // and never answer
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	host := l.Addr().String()
	path := filepath.Join(t.TempDir(), "berth.toml")
	cfg, err := ParseConfig(path, []byte(`[registries."`+host+`"]
insecure = true

[[container]]
name = "app"
image = "docker://`+host+`/app:1"
command = ["true"]
`))
	if err != nil {
		t.Fatal(err)
	}
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{StateDir: t.TempDir()}, cfg: &Config{}}
	s := newSupervisor(b, &Config{})
	switched := make(chan struct{})
	go func() {
		s.switchTo(cfg, plan{added: []string{"app"}})
		close(switched)
	}()
	// 20 s, not hangGuard: well under the registry client's 60 s read
	// timeout, so a pull made on the loop could not have ended in it.
	select {
	case <-switched:
	case <-time.After(20 * time.Second):
		t.Fatal("switchTo held the loop for 20 s while the registry answered nothing")
	}
	if u := s.units["app"]; u == nil || !u.preparing || s.pending != 1 {
		t.Fatalf("after the switch: unit %+v, pending %d; want app preparing on a pull", u, s.pending)
	}
	s.pullCancel()
	for {
		select {
		case ev := <-s.pullEvents:
			if ev.wait == "" {
				return // the pull has ended
			}
		case <-time.After(hangGuard):
			t.Fatal("the cancelled pull did not end")
		}
	}
}

// TestUpdateCollectsImagesOffLoop: the image cache's collection after an
// update waits for the cache's lock — which an unpack under way holds,
// the boot's or another berth's — off the loop: the loop answers while
// it waits, and the next update is not refused meanwhile.
func TestUpdateCollectsImagesOffLoop(t *testing.T) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{StateDir: t.TempDir()}, cfg: &Config{}}
	b.storage = &storageState{mounted: true}
	b.gens = &genState{store: &genStore{}, rec: genRecord{Committed: 1}}
	s := newSupervisor(b, &Config{})
	cache, err := s.imageCache(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache.Root, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil { // an unpack under way
		t.Fatal(err)
	}
	fakeLoop(t, s)
	r := &request{Request: Request{Verb: "apply", Path: filepath.Join(t.TempDir(), "missing.toml")}, reply: make(chan reply, 1)}
	s.onLoop(func() { s.startUpdate(updateApply, r) })
	select {
	case rep := <-r.reply:
		if !strings.Contains(rep.Error, "missing.toml") {
			t.Errorf("answer %q, want the missing file named", rep.Error)
		}
	case <-time.After(hangGuard):
		t.Fatal("no answer")
	}
	// The reply goes before the update is marked over, on the loop:
	// wait for that (a loaded machine may take its time), while the
	// collection still waits for the lock.
	updating := true
	for deadline := time.Now().Add(hangGuard); updating; time.Sleep(offLoopPoll) {
		if time.Now().After(deadline) {
			t.Fatal("the update still counts as in progress while only its collection waits: the next apply would be refused")
		}
		s.onLoop(func() { updating = b.gens.updating })
	}
	loopAnswers(t, s, "the image cache's collection waits for its lock")
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
}
