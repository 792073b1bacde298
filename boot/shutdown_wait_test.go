package boot

import (
	"context"
	"strings"
	"testing"
	"time"
)

// preparingSupervisor is a supervisor with a unit whose image file is
// being readied and one whose registry pull is under way, and the log it
// writes to.
func preparingSupervisor() (*supervisor, *lockedBuffer) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1)}
	s := newSupervisor(b, &Config{})
	for _, cc := range []ContainerConfig{{Name: "app", Image: "/images/app.tar"}, {Name: "web", Image: "docker://10.0.0.2:5000/web:1"}} {
		u := newUnit(cc, b.log, nil)
		u.preparing = true
		s.units[cc.Name] = u
		s.order = append(s.order, cc.Name)
	}
	return s, console
}

// stopPreparingWithin runs stopPreparing(limit) and fails the test unless
// it returns within 5 s.
func stopPreparingWithin(t *testing.T, s *supervisor, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.stopPreparing(limit)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("stopPreparing(%s) did not return within 5 s while the image goroutine and a pull never end", limit)
	}
}

// TestShutdownImageWaitBounded: an image goroutine and a pull that never
// end (a stalled unpack, a registry that stopped sending) do not hold the
// shutdown: its wait gives up after its limit, the pull cancelled, and
// says which did not end.
func TestShutdownImageWaitBounded(t *testing.T) {
	s, console := preparingSupervisor()
	stop := make(chan struct{})
	s.images, s.imagesStop = make(chan imageReady), stop // never sends, never closes
	imagesCtx, abandon := context.WithCancel(context.Background())
	s.imagesAbandon = abandon
	s.pullEvents = make(chan pullEvent) // never sends
	abandoned := make(chan struct{})
	s.pullsAbandoned = abandoned
	s.pullCtx, s.pullCancel = context.WithCancel(context.Background())
	s.pending = 1
	stopPreparingWithin(t, s, 100*time.Millisecond)
	select {
	case <-stop:
	default:
		t.Error("the image goroutine was not told to stop")
	}
	if s.pullCtx.Err() == nil {
		t.Error("the pull was not cancelled")
	}
	if imagesCtx.Err() == nil {
		t.Error("the image goroutine was not abandoned: what it readies later it would mount")
	}
	select {
	case <-abandoned: // a pull ending later, or panicking, does not block on its last word
	default:
		t.Error("the pulls were not told they are abandoned")
	}
	s.b.log.Flush(5 * time.Second)
	log := console.String()
	for _, want := range []string{
		"shutdown: the image goroutine did not end within 100ms (readying app); going on without it",
		"shutdown: 1 registry pulls did not end within 100ms (web); going on without them",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// A second wait (reload, or stopAll again) does not close imagesStop twice.
	stopPreparingWithin(t, s, 10*time.Millisecond)
}

// TestShutdownImageWaitEnds: an image goroutine that stops when told, and
// a pull that ends when cancelled, are waited for, and nothing is logged.
func TestShutdownImageWaitEnds(t *testing.T) {
	s, console := preparingSupervisor()
	ready, stop := make(chan imageReady), make(chan struct{})
	s.images, s.imagesStop = ready, stop
	go func() {
		<-stop
		close(ready)
	}()
	events := make(chan pullEvent)
	s.pullEvents = events
	s.pullCtx, s.pullCancel = context.WithCancel(context.Background())
	s.pending = 1
	go func(ctx context.Context) {
		<-ctx.Done()
		events <- pullEvent{ready: imageReady{name: "web", err: ctx.Err()}}
	}(s.pullCtx)
	stopPreparingWithin(t, s, time.Minute)
	s.b.log.Flush(5 * time.Second)
	if s.images != nil || s.pending != 0 {
		t.Errorf("images %v, pending %d: not waited for", s.images, s.pending)
	}
	if log := console.String(); strings.Contains(log, "did not end") {
		t.Errorf("log:\n%s", log)
	}
}

// TestPanicAfterLoopLogged: a goroutine's panic once the supervisor loop
// has ended (during the shutdown) is logged, not left in b.fatal; so is
// the one the loop left untaken.
func TestPanicAfterLoopLogged(t *testing.T) {
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1)}
	b.goSafe(func() { panic("before the end") })
	deadline := time.Now().Add(5 * time.Second)
	for len(b.fatal) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.endFatal()
	b.goSafe(func() { panic("during the shutdown") })
	want := []string{"after the supervisor loop ended: panic: before the end", "after the supervisor loop ended: panic: during the shutdown"}
	for time.Now().Before(deadline) {
		b.log.Flush(5 * time.Second)
		if strings.Contains(console.String(), want[0]) && strings.Contains(console.String(), want[1]) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("log lacks %q:\n%s", want, console.String())
}

// TestWaitPullsTakesWhatEnded: once the deadline has passed, a pull that
// has ended already still counts as ended (a select between the two
// would pick either), so it is neither logged nor abandoned as stuck.
func TestWaitPullsTakesWhatEnded(t *testing.T) {
	for range 50 { // a random choice would be wrong about half the time
		s, _ := preparingSupervisor()
		s.pullEvents = make(chan pullEvent, 1)
		s.pullEvents <- pullEvent{ready: imageReady{name: "web", err: context.Canceled}}
		s.pullCtx, s.pullCancel = context.WithCancel(context.Background())
		s.pending = 1
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if !s.waitPulls(ctx) {
			t.Fatal("a pull that had ended counted as not ended, the deadline having passed")
		}
	}
}
