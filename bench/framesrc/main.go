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
// It cuts the tar into 4 MiB frames as berth image pack does
// (SpeedBetterCompression, checksums), writes them to a file beside the
// tar, drops that file from the page cache and reads it back (so that it
// is cached as a file read from disk is, unless -as-written), and decodes
// them on two goroutines, alternating the sources round by round; it
// prints the median and least decode CPU time, summed over the
// goroutines, of each source.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
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
	frames, offs, err := encode(tarPath)
	if err != nil {
		return err
	}
	path := tarPath + ".frames"
	defer os.Remove(path)
	if err := os.WriteFile(path, slices.Concat(frames...), 0o644); err != nil {
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
	fmt.Printf("%d frames of 4 MiB, %d bytes compressed; decode CPU summed over 2 goroutines, %d rounds:\n", len(frames), offs[len(offs)-1], rounds)
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

// encode cuts the file into frames of 4 MiB compressed as berth packs.
func encode(path string) (frames [][]byte, offs []int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, nil, err
	}
	offs = []int{0}
	for off := 0; off < len(data); off += 4 << 20 {
		fr := enc.EncodeAll(data[off:min(off+4<<20, len(data))], nil)
		frames = append(frames, fr)
		offs = append(offs, offs[len(offs)-1]+len(fr))
	}
	return frames, offs, nil
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
