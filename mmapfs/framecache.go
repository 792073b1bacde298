package mmapfs

import "sync"

// frameCache keeps the most recently used decoded frames up to a byte
// budget. Concurrent requests for one frame share a single decode. A frame
// evicted while a reader still holds it stays valid for that reader: the
// cache never reuses buffers.
type frameCache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	tick   uint64
	frames map[int]*cachedFrame
}

type cachedFrame struct {
	ready   chan struct{}
	buf     []byte
	err     error
	lastUse uint64
}

func newFrameCache(budget int64) *frameCache {
	return &frameCache{budget: budget, frames: make(map[int]*cachedFrame)}
}

// get returns frame i, calling decode when it is not cached. Errors are not
// cached: the next get tries again.
func (c *frameCache) get(i int, decode func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	c.tick++
	if cf, ok := c.frames[i]; ok {
		cf.lastUse = c.tick
		c.mu.Unlock()
		<-cf.ready
		return cf.buf, cf.err
	}
	cf := &cachedFrame{ready: make(chan struct{}), lastUse: c.tick}
	c.frames[i] = cf
	c.mu.Unlock()

	cf.buf, cf.err = decode()
	close(cf.ready)

	c.mu.Lock()
	defer c.mu.Unlock()
	if cf.err != nil {
		delete(c.frames, i)
		return nil, cf.err
	}
	c.used += int64(len(cf.buf))
	c.evict(i)
	return cf.buf, nil
}

// evict drops least recently used finished frames, other than keep, until
// the cache fits its budget.
func (c *frameCache) evict(keep int) {
	for c.used > c.budget {
		victim, oldest := -1, uint64(0)
		for i, cf := range c.frames {
			select {
			case <-cf.ready:
			default:
				continue // still decoding
			}
			if i != keep && (victim < 0 || cf.lastUse < oldest) {
				victim, oldest = i, cf.lastUse
			}
		}
		if victim < 0 {
			return
		}
		c.used -= int64(len(c.frames[victim].buf))
		delete(c.frames, victim)
	}
}
