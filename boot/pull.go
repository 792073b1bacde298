package boot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth/image"
	"berth/image/registry"
)

// Registry images. A container whose image is docker://… gets a goroutine
// of its own, never the supervisor loop's: it resolves the reference to a
// digest, checks the container's digest pin against it, pulls that digest
// (registry.Pull: verified, signature enforced, unpacked into the cache)
// and readies the root filesystem as for an image file. While the
// registry cannot be reached it tries again after 1 s, doubling up to
// 60 s, and tells the loop each time, so that berth ps shows what the
// container waits for; the containers with image files start and run
// meanwhile. A digest pin the registry does not match is final: the
// container fails and never runs. The goroutine touches no unit: its
// events go to the loop, as the image goroutine's do.

// Backoff of a pull that failed.
const (
	pullFirstRetry = time.Second
	pullMaxRetry   = 60 * time.Second
)

// pullEvent is a pull goroutine's news: a try failed and the next is at
// retry (wait is why), or its last word, the root filesystem or why it
// cannot be had (ready).
type pullEvent struct {
	ready imageReady
	wait  string
	retry time.Time
}

// pullError is a failed try that a later one may get past: the registry
// was down, slow, or did not have the image yet.
type pullError struct {
	host string
	err  error
}

func (e *pullError) Error() string { return fmt.Sprintf("registry %s: %v", e.host, e.err) }
func (e *pullError) Unwrap() error { return e.err }

// startPull readies u's registry image on a goroutine of its own.
func (s *supervisor) startPull(cfg *Config, u *unit) {
	if s.pullEvents == nil {
		s.pullEvents, s.pullsAbandoned = make(chan pullEvent), make(chan struct{})
		s.pullCtx, s.pullCancel = context.WithCancel(context.Background())
	}
	u.preparing = true
	s.pending++
	cc, ctx, events, abandoned := u.cfg, s.knownImage(s.pullCtx, u.cfg), s.pullEvents, s.pullsAbandoned
	s.b.goSafe(func() {
		// The last word goes out however the goroutine ends, a panic
		// (which goSafe then reports) included: waitPulls counts them.
		// Unless a shutdown has stopped waiting (abandoned): then it is
		// dropped, so that goSafe still logs a panic.
		r := imageReady{name: cc.Name, err: errors.New("its pull ended without a result")}
		defer func() {
			select {
			case events <- pullEvent{ready: r}: // waitPulls takes it when nothing else does
			case <-abandoned:
			}
		}()
		delay := pullFirstRetry
		for {
			r.rootfs, r.config, r.err = s.readyRootfs(ctx, cfg, cc)
			var pe *pullError
			if !errors.As(r.err, &pe) || ctx.Err() != nil {
				break
			}
			select {
			case events <- pullEvent{ready: imageReady{name: cc.Name}, wait: pe.Error(), retry: time.Now().Add(delay)}:
			case <-ctx.Done():
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			delay = min(2*delay, pullMaxRetry)
		}
	})
}

// pullDone takes a pull goroutine's event.
func (s *supervisor) pullDone(ev pullEvent) {
	u := s.units[ev.ready.name]
	if u == nil {
		return // not reached: a reload waits for the pulls (waitPulls)
	}
	if ev.wait != "" {
		u.imageWait, u.imageRetry = ev.wait, ev.retry
		s.b.log.Printf("container %s: waiting for its image (%s; retry in %s)", u.name, ev.wait, time.Until(ev.retry).Round(time.Second))
		return
	}
	s.pending--
	u.imageWait = ""
	if s.pullCtx.Err() != nil {
		// Cancelled for a switch (endPulls): its unit is replaced and
		// stays preparing until then, as waitPulls leaves it — even when
		// its unpack ended well, so that the loop does not start the old
		// definition in the turns before the switch.
		if s.pending == 0 {
			s.pullsEnded()
		}
		if ev.ready.err == nil && u.preparing {
			s.imageDone(ev.ready, true) // mounted: the unit holds it until the switch replaces it
			u.preparing = true
		}
		return
	}
	if u.preparing {
		s.imageDone(ev.ready, true)
	}
}

// imageWaitDetail is what a unit waiting for its registry image waits for.
func (u *unit) imageWaitDetail() string {
	if u.imageWait == "" {
		return "waiting for its image"
	}
	return fmt.Sprintf("waiting for its image (%s; retry in %s)", u.imageWait, max(0, time.Until(u.imageRetry)).Round(time.Second))
}

// pullsEnded forgets the ended pulls' channel and context: the next
// startPull makes new ones.
func (s *supervisor) pullsEnded() {
	s.pullEvents, s.pullsAbandoned, s.pullCtx, s.pullCancel = nil, nil, nil, nil
}

// waitPulls cancels the pending pulls and waits for their goroutines to
// end (an unpack under way finishes first), or until ctx is done, and
// reports whether they all ended; the units they were for stay
// preparing. The watchdog is pinged meanwhile.
func (s *supervisor) waitPulls(ctx context.Context) bool {
	if s.pending == 0 {
		return true
	}
	s.pullCancel()
	defer s.b.pingWatchdog()()
	for s.pending > 0 {
		var ev pullEvent
		select {
		case ev = <-s.pullEvents: // what has ended counts, the deadline passed or not
		default:
			select {
			case ev = <-s.pullEvents:
			case <-ctx.Done():
				return false
			}
		}
		if ev.wait != "" {
			continue
		}
		s.pending--
		if ev.ready.err == nil {
			s.imageDone(ev.ready, true) // mounted: the unit may use it
		}
	}
	s.pullsEnded()
	return true
}

// knownImageKey carries, in a pull's context, the image a known
// generation pulled as the container's reference: the loop looks it up
// (knownImage), since the generations are the loop's, and the pull's
// goroutine takes it from there.
type knownImageKey struct{}

// knownImage is ctx with the generations' image for cc's reference, if
// they have one. The loop calls it.
func (s *supervisor) knownImage(ctx context.Context, cc ContainerConfig) context.Context {
	if gi, ok := s.b.gens.imageByRef(cc.Image); ok {
		return context.WithValue(ctx, knownImageKey{}, gi)
	}
	return ctx
}

// prepareRegistryImage readies cc's registry image in cache: a known
// generation's tree (knownImage) when the cache has it — the generation
// resolved the tag once, so its boot asks no registry — else pulled
// (pullImage).
func (s *supervisor) prepareRegistryImage(ctx context.Context, cache *image.Cache, cfg *Config, cc ContainerConfig) (image.Prepared, error) {
	if gi, ok := ctx.Value(knownImageKey{}).(genImage); ok {
		if p, ok, err := cache.Lookup(gi.Digest); err == nil && ok {
			p.Config = gi.Config
			s.b.log.Printf("image %s for %s: the generation's tree %s is in the cache: the registry is not asked", cc.Image, cc.Name, short(gi.Digest))
			s.b.gens.notePrepared(cc.Name, gi)
			return p, nil
		}
	}
	p, ref, err := s.pullImage(ctx, cache, cfg, cc)
	if gi, ok := ctx.Value(knownImageKey{}).(genImage); ok && err != nil {
		// An older berth's tree of the generation's image: pulled again
		// when the registry answers, else used as it is.
		if lp, ok, lerr := cache.LookupAny(gi.Digest); lerr == nil && ok {
			s.b.log.Printf("image %s for %s: %v; the generation's tree %s, unpacked by an older berth, is in the cache: using it", cc.Image, cc.Name, err, short(gi.Digest))
			lp.Config = gi.Config
			s.b.gens.notePrepared(cc.Name, gi)
			return lp, nil
		}
	}
	if err == nil {
		s.b.gens.notePrepared(cc.Name, genImage{Digest: p.Digest, Config: p.Config, Ref: ref})
	}
	return p, err
}

// pullImage resolves cc's reference, checks the digest pin, pulls the
// image by the digest resolved into cache and remembers which entry the
// reference names. It returns the reference pinned to that digest.
func (s *supervisor) pullImage(ctx context.Context, cache *image.Cache, cfg *Config, cc ContainerConfig) (image.Prepared, string, error) {
	ref, err := registry.ParseRef(cc.Image)
	if err != nil {
		return image.Prepared{}, "", err // validated: not reached
	}
	regs := cfg.RegistrySettings()
	digest, err := registry.ResolveTo(ctx, cc.Image, regs, cc.Digest)
	if err != nil {
		return image.Prepared{}, "", &pullError{host: ref.Host, err: err}
	}
	if cc.Digest != "" && digest != cc.Digest {
		return image.Prepared{}, "", fmt.Errorf("%s: %w: the registry has %s, the config pins %s (nothing fetched)",
			cc.Image, image.ErrDigestMismatch, digest, cc.Digest)
	}
	ref.Digest = digest
	opts := registry.Options{Platform: cc.Platform, PublicKey: cfg.prepareOptions(cc).PublicKey, Registries: regs}
	p, err := registry.Pull(ctx, cache, ref.String(), opts)
	if err != nil {
		return image.Prepared{}, "", &pullError{host: ref.Host, err: err}
	}
	if err := registry.Remember(cache, cc.Image, cc.Platform, p.Digest, p.Prepared.Digest); err != nil {
		s.b.log.Printf("warning: %v", err)
	}
	s.b.log.Printf("image %s for %s: %s pulled from %s", cc.Image, cc.Name, short(digest), p.Host)
	return p.Prepared, ref.String(), nil
}
