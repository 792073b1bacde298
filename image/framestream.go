package image

import (
	"fmt"
	"io"
)

// frameStream is the tar stream of a berth image read from a crew's
// decoded frames: an io.Reader and forward io.Seeker (archive/tar skips
// file data by seeking), which can also hand out a file's data as slices
// of the decoded frames without copying (take).
type frameStream struct {
	c    *crew
	win  []*frameBuf // frames pulled and not yet passed; win[0] is current
	pos  int         // read position in win[0]
	off  int64       // read position in the stream
	err  error       // sticky
	done int         // frames pulled so far
	// onPull runs before asking for the next frame: the unpacker queues
	// its partial batch there, so that no frame it holds back keeps that
	// next frame from fitting in the budget.
	onPull func()
	tap    *tap // sees what Read returns
}

// maxTakeFrames is how many frames take may span: the stream then holds at
// most this many while the next one decodes, which frameBuffers allows for.
const maxTakeFrames = 2

func newFrameStream(c *crew) *frameStream { return &frameStream{c: c} }

// pull appends the next decoded frame to the window.
func (s *frameStream) pull() error {
	if s.err != nil {
		return s.err
	}
	if s.done == len(s.c.table.Frames) {
		s.err = io.EOF
		return s.err
	}
	if s.onPull != nil {
		s.onPull()
	}
	f, err := s.c.frame(s.done)
	if err != nil {
		s.err = err
		if f != nil {
			f.unref()
		}
		return s.err
	}
	s.done++
	s.win = append(s.win, f)
	return nil
}

// current returns the unread part of the current frame, pulling the next
// frame when the current one is used up. It is empty only with an error.
func (s *frameStream) current() ([]byte, error) {
	for len(s.win) == 0 || s.pos == len(s.win[0].buf) {
		if len(s.win) > 0 {
			s.win[0].unref()
			s.win[0] = nil
			s.win = s.win[1:]
			s.pos = 0
			continue
		}
		if err := s.pull(); err != nil {
			return nil, err
		}
	}
	return s.win[0].buf[s.pos:], nil
}

// Read implements io.Reader.
func (s *frameStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	cur, err := s.current()
	if err != nil {
		return 0, err
	}
	n := copy(p, cur)
	s.tap.note(s.off, p[:n])
	s.pos += n
	s.off += int64(n)
	return n, nil
}

// Seek moves forward by offset bytes (whence io.SeekCurrent only). At the
// end of the stream it stops short without an error: the read that follows
// reports it, as archive/tar expects.
func (s *frameStream) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return s.off, fmt.Errorf("frame stream: unsupported seek (%d, %d)", offset, whence)
	}
	for offset > 0 {
		cur, err := s.current()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.off, err
		}
		n := int(min(int64(len(cur)), offset))
		s.pos += n
		s.off += int64(n)
		offset -= int64(n)
	}
	return s.off, nil
}

// take returns the next n bytes as slices of the decoded frames, without
// consuming them, and a reference to each frame they lie in (drop them
// with unref). ok is false, with nothing taken, when the bytes span more
// than maxTakeFrames frames.
func (s *frameStream) take(n int64) (chunks [][]byte, refs []*frameBuf, ok bool, err error) {
	if n == 0 {
		return nil, nil, true, nil
	}
	if _, err := s.current(); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the stream ends right after the header
		}
		return nil, nil, false, err
	}
	i, pos := 0, s.pos
	for n > 0 {
		if i == len(s.win) {
			if i == maxTakeFrames {
				for _, f := range refs {
					f.unref()
				}
				return nil, nil, false, nil
			}
			if err := s.pull(); err != nil {
				for _, f := range refs {
					f.unref()
				}
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, nil, false, err
			}
		}
		buf := s.win[i].buf[pos:]
		if c := min(int64(len(buf)), n); c > 0 {
			chunks = append(chunks, buf[:c])
			s.win[i].ref()
			refs = append(refs, s.win[i])
			n -= c
		}
		i, pos = i+1, 0
	}
	return chunks, refs, true, nil
}

// offset is the read position in the tar stream.
func (s *frameStream) offset() int64 { return s.off }

// close drops the frames still held.
func (s *frameStream) close() {
	for _, f := range s.win {
		f.unref()
	}
	s.win = nil
}
