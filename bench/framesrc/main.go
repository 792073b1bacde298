// Command framesrc measures what it costs a zstd decoder to read its
// frames from each kind of memory an unpack could read them from: the
// Go heap, a mapping of the file whose pages are mapped already, a fresh
// mapping (what every unpack process has), a fresh mapping populated
// frame by frame (MADV_POPULATE_READ), and copies read with pread(2).
// It is the measurement behind mmapfs.DecodeFrame reading frames with
// pread (bench/README.md, "Unpack: frames copied with pread").
//
//	go run ./bench/framesrc .cache/bench/artifacts/minbase/minbase.tar
//	go run ./bench/framesrc -as-written .cache/bench/artifacts/minbase/minbase.tar
//
// It packs the tar into a berth image with image.Pack (4 MiB frames, as
// berth image pack makes them), drops the image from the page cache and
// reads it back (so that it is cached as a file read from disk is, unless
// -as-written), and decodes its frames on two goroutines, alternating the
// sources round by round; it prints the median and least decode time of
// each source, summed over the goroutines (each goroutine's wall time
// from its first frame to its last).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"berth/image"
	"berth/mmapfs"
)

func main() {
	rounds := flag.Int("rounds", 9, "rounds, each decoding every frame once from each source")
	asWritten := flag.Bool("as-written", false, "leave the frames' file cached as it was written, not as read from disk")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: framesrc [-rounds N] FILE.tar")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *rounds, *asWritten); err != nil {
		fmt.Fprintln(os.Stderr, "framesrc:", err)
		os.Exit(1)
	}
}

// source gives goroutine g frame i; prepare runs before each round.
type source struct {
	name    string
	frame   func(g, i int) []byte
	prepare func()
}

func run(tarPath string, rounds int, asWritten bool) error {
	path := tarPath + ".berth"
	defer os.Remove(path)
	frames, offs, err := pack(tarPath, path)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !asWritten {
		if err := recache(f, offs[len(offs)-1]); err != nil {
			return err
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, offs[len(offs)-1], unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	mapped := func(g, i int) []byte { return m[offs[i]:offs[i+1]] }
	unmap := func() { _ = unix.Madvise(m, unix.MADV_DONTNEED) }
	bufs := [][]byte{make([]byte, 8<<20), make([]byte, 8<<20)}
	sources := []source{
		{"the Go heap", func(g, i int) []byte { return frames[i] }, nil},
		{"a mapping, pages mapped", mapped, nil},
		{"a fresh mapping", mapped, unmap},
		{"a fresh mapping, populated", func(g, i int) []byte {
			start := offs[i] &^ (os.Getpagesize() - 1)
			_ = unix.Madvise(m[start:offs[i+1]], unix.MADV_POPULATE_READ)
			return m[offs[i]:offs[i+1]]
		}, unmap},
		{"copies read with pread", func(g, i int) []byte {
			b := bufs[g][:offs[i+1]-offs[i]]
			if _, err := f.ReadAt(b, int64(offs[i])); err != nil {
				panic(err)
			}
			return b
		}, nil},
	}
	took := make([][]time.Duration, len(sources))
	for range rounds {
		for k, s := range sources {
			if s.prepare != nil {
				s.prepare()
			}
			took[k] = append(took[k], decode(s.frame, len(frames)))
		}
	}
	fmt.Printf("%d frames of up to 4 MiB, %d bytes compressed; decode time summed over 2 goroutines, %d rounds:\n", len(frames), offs[len(offs)-1], rounds)
	for k, s := range sources {
		slices.Sort(took[k])
		fmt.Printf("  %-28s median %6.1f ms  least %6.1f ms\n", s.name, ms(took[k][len(took[k])/2]), ms(took[k][0]))
	}
	return nil
}

// recache drops the file from the page cache and reads it back, so that
// it is cached as a file read from disk is (this kernel caches what it
// reads ahead in 4 KiB pages, what a process wrote in larger folios,
// which a fault maps more of at once): as an image is when a machine
// unpacks it, and as make bench's image is.
func recache(f *os.File, size int) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return err
	}
	_, err := f.ReadAt(make([]byte, size), 0)
	return err
}

// pack packs the tar at tarPath into a berth image at path and returns
// its data frames, read back, and their offsets in the file (the last
// one the end of the last frame).
func pack(tarPath, path string) (frames [][]byte, offs []int, err error) {
	if err := image.Pack(tarPath, path, image.PackOptions{}); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := mmapfs.ParseSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	for i, fr := range st.Frames {
		off := int(st.Offsets[i])
		if i > 0 && off != offs[i-1]+len(frames[i-1]) {
			return nil, nil, fmt.Errorf("%s: frame %d does not follow frame %d", path, i, i-1)
		}
		frames = append(frames, data[off:off+int(fr.CSize)])
		offs = append(offs, off)
	}
	return frames, append(offs, int(st.DataEnd)), nil
}

// decode decodes the n frames on two goroutines, frame i on goroutine
// i%2, and returns their CPU time summed (wall time per goroutine).
func decode(frame func(g, i int) []byte, n int) time.Duration {
	var mu sync.Mutex
	var sum time.Duration
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			if err != nil {
				panic(err)
			}
			defer dec.Close()
			out := make([]byte, 0, 4<<20)
			start := time.Now()
			for i := g; i < n; i += 2 {
				if out, err = dec.DecodeAll(frame(g, i), out[:0]); err != nil {
					panic(err)
				}
			}
			mu.Lock()
			sum += time.Since(start)
			mu.Unlock()
		})
	}
	wg.Wait()
	return sum
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
