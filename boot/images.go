package boot

import (
	"context"
	"os"
	"runtime"
	"strings"
	"time"

	"berth/image"
	"berth/image/registry"
)

// The boot's images. The images phase hands them to a goroutine, which
// readies each container's root filesystem (rootfs.go) in the order the
// containers can start and sends it to the supervisor loop; the loop
// starts each container as soon as its image is ready and its
// dependencies allow. The first container starts while the others'
// images unpack, and a container with a small image does not wait for a
// large one. The goroutine touches no unit — the loop alone does, as with
// every event; an update waits for it, a shutdown stops it after the
// image it is on (waiting for that at most shutdownImageWait). Images in
// a registry are not its: each is pulled on a goroutine of its own
// (pull.go), which may wait long for its registry.
//
// On one CPU, readying the next image while the loop starts a container
// only delays that start (and the first container's output): the two
// cannot run at once. There the goroutine hands each image over and waits
// until the loop has started what it could (taken), then readies the
// next; with more CPUs it goes on at once.

// imageReady is one unit's root filesystem, readied by the image
// goroutine; or why it could not be.
type imageReady struct {
	name, rootfs string
	config       image.Config
	err          error
	// taken, when set, is closed by the loop once it has started what
	// this image let it start (or, stopping, taken the image).
	taken chan struct{}
}

// startImages starts readying the boot's images on a goroutine. When they
// are all ready, it collects the cache's unused trees (on the data
// partition, as berth's own cache).
func (s *supervisor) startImages() {
	// A removed container's tree goes to the trash, emptied off the loop.
	t, err := newTrash(s.b.opts.StateDir, s.b.log, s.b.goSafe)
	if err != nil {
		s.b.log.Printf("warning: %v: released trees are removed in place", err)
	}
	s.trash = t
	s.removeStaleRootfs()
	s.readyImages(s.b.cfg, startOrder(s.order, s.units), true)
}

// readyImages starts readying the named units' images, in that order:
// the image files' on one goroutine, each registry image on a pull of
// its own. The loop takes each as it is ready (imageDone, pullDone) and
// starts its unit. The boot's (boot) and a switch's (switchTo) go this
// way, so that no unpack or pull runs on the loop.
func (s *supervisor) readyImages(cfg *Config, names []string, boot bool) {
	var jobs []ContainerConfig
	for _, name := range names {
		u := s.units[name]
		if registry.IsRef(u.cfg.Image) {
			s.startPull(cfg, u) // its own goroutine: it may wait long
			continue
		}
		u.preparing = true
		jobs = append(jobs, u.cfg)
	}
	if !boot && len(jobs) == 0 {
		return
	}
	s.imagesBoot = boot
	collect := boot && s.b.storage != nil && s.b.storage.mounted && cfg.Images.Cache == ""
	ready := make(chan imageReady, len(jobs)) // never blocks the goroutine
	stop := make(chan struct{})
	ctx, abandon := context.WithCancel(context.Background())
	s.images, s.imagesStop, s.imagesAbandon = ready, stop, abandon
	s.imagesStart = time.Now()
	handOver := runtime.NumCPU() == 1
	s.b.goSafe(func() {
		defer close(ready)
		for _, cc := range jobs {
			select {
			case <-stop:
				return
			default:
			}
			rootfs, ic, err := s.readyImage(ctx, cfg, cc, handOver)
			r := imageReady{name: cc.Name, rootfs: rootfs, config: ic, err: err}
			if handOver {
				r.taken = make(chan struct{})
			}
			ready <- r
			if r.taken != nil {
				select {
				case <-r.taken:
				case <-stop:
				}
			}
		}
		if collect {
			s.collectImages()
		}
	})
}

// readyImage readies cc's root filesystem for the image goroutine. On one
// CPU it does so with GOMAXPROCS 2, the unpack still on one goroutine (its
// workers are at most the CPUs): with one P, each system call of the
// unpack that outlasts a tick of the runtime's monitor thread loses the P
// to another thread, which finds nothing to run, and the unpack takes
// context switches to get it back — ~4,000 for the demo image's 281
// entries under QEMU TCG, ~800 with a second P, which the runtime then
// leaves with the call. The default is back before the loop starts the
// container. A GOMAXPROCS in the environment is left as it is.
func (s *supervisor) readyImage(ctx context.Context, cfg *Config, cc ContainerConfig, oneCPU bool) (string, image.Config, error) {
	if oneCPU && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
		defer runtime.SetDefaultGOMAXPROCS()
	}
	return s.readyRootfs(ctx, cfg, cc)
}

// imageDone takes what the image goroutine sent; ok is false once it has
// sent all. The loop takes that last event after starting the containers
// whose images were ready, so what it does then delays none of them.
func (s *supervisor) imageDone(r imageReady, ok bool) {
	if !ok {
		s.images = nil
		if !s.imagesBoot {
			s.b.log.Printf("images: the switch's all ready %.1f ms after it", float64(time.Since(s.imagesStart))/1e6)
			steadyGC()
			return
		}
		s.b.laterModules()
		s.b.log.Printf("images: all ready %.1f ms after the images phase began", float64(time.Since(s.imagesStart))/1e6)
		// Unpacking used decoder buffers that PID 1 will not need again
		// for months: hand them back to the kernel now rather than when
		// the scavenger gets to them.
		steadyGC()
		s.bootImagesReady() // generation_boot.go
		return
	}
	if r.taken != nil {
		s.imageTaken = r.taken // closed once the loop has started u, if it can
	}
	u := s.units[r.name]
	u.preparing = false
	err := r.err
	if err == nil {
		err = u.useImage(r.rootfs, r.config)
	}
	if err != nil {
		u.state, u.lastError = stateFailed, err.Error()
		s.b.log.Printf("container %s: %v", r.name, err)
	}
}

// waitImages waits until the image goroutine has ended, taking what it
// sends, or until ctx is done, and reports whether it ended; with stop,
// it readies no further image. The watchdog is pinged meanwhile: an image
// may take long to unpack.
func (s *supervisor) waitImages(ctx context.Context, stop bool) bool {
	if s.images == nil {
		return true
	}
	if stop && s.imagesStop != nil {
		close(s.imagesStop)
		s.imagesStop = nil // a later wait, after one that gave up, closes it once
	}
	defer s.b.pingWatchdog()()
	for s.images != nil {
		r, ok, got := s.nextImage(ctx)
		if !got {
			return false
		}
		s.imageDone(r, ok)
		s.imageHandedOver()
	}
	return true
}

// nextImage takes what the image goroutine sends next, preferring what
// it has sent already to a ctx that is done; got is false when ctx ended
// first.
func (s *supervisor) nextImage(ctx context.Context) (r imageReady, ok, got bool) {
	select {
	case r, ok = <-s.images:
		return r, ok, true
	default:
	}
	select {
	case r, ok = <-s.images:
		return r, ok, true
	case <-ctx.Done():
		return r, false, false
	}
}

// shutdownImageWait bounds how long a shutdown waits for the image
// goroutine and the registry pulls, together, once they are told to stop:
// an unpack on a stalled disk or a registry that stops sending mid-body
// must not keep the machine from powering off.
const shutdownImageWait = 10 * time.Second

// stopPreparing stops readying images for a shutdown: it cancels the
// pulls, stops the image goroutine after the image it is on, and waits
// for them for at most limit; what has not ended by then is logged and
// left behind (the shutdown kills, syncs and unmounts what it touches).
// The units still preparing stay so, and do not start.
func (s *supervisor) stopPreparing(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if s.pending > 0 {
		s.pullCancel() // both stop at once; waitPulls cancels too
	}
	if !s.waitImages(ctx, true) {
		if s.imagesAbandon != nil {
			s.imagesAbandon() // what it readies after all, it does not mount
		}
		s.b.log.Printf("shutdown: the image goroutine did not end within %s (readying %s); going on without it",
			limit, strings.Join(s.preparingNames(false), ", "))
	}
	if !s.waitPulls(ctx) {
		s.b.log.Printf("shutdown: %d registry pulls did not end within %s (%s); going on without them",
			s.pending, limit, strings.Join(s.preparingNames(true), ", "))
		if s.pullsAbandoned != nil {
			close(s.pullsAbandoned) // their last words are not waited for
			s.pullsAbandoned = nil
		}
	}
}

// preparingNames names the units whose image is still being readied:
// those from a registry (pulls), or the others (the image goroutine).
func (s *supervisor) preparingNames(pulled bool) []string {
	var names []string
	for _, name := range s.order {
		if u := s.units[name]; u != nil && u.preparing && registry.IsRef(u.cfg.Image) == pulled {
			names = append(names, name)
		}
	}
	return names
}

// imageHandedOver lets the image goroutine, waiting on one CPU, ready the
// next image: the loop calls it once it has started what the last image
// it took allowed.
func (s *supervisor) imageHandedOver() {
	if s.imageTaken != nil {
		close(s.imageTaken)
		s.imageTaken = nil
	}
}
