package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// gdbRemote is the little of GDB's remote serial protocol that sampling
// a guest's program counter takes: QEMU's gdbstub (-gdb) stops the
// virtual CPU on an interrupt byte, answers a register read and lets the
// CPU go on.
type gdbRemote struct {
	c net.Conn
	r *bufio.Reader
}

func dialGDB(network, addr string, wait time.Duration) (*gdbRemote, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			return &gdbRemote{c: c, r: bufio.NewReader(c)}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("gdbstub %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gdbRemote) Close() error { return g.c.Close() }

// send writes one packet, $DATA#CHECKSUM.
func (g *gdbRemote) send(data string) error {
	var sum byte
	for i := 0; i < len(data); i++ {
		sum += data[i]
	}
	_, err := fmt.Fprintf(g.c, "$%s#%02x", data, sum)
	return err
}

// recv reads the next packet, skipping the acknowledgements before it,
// checks its checksum and acknowledges it.
func (g *gdbRemote) recv() (string, error) {
	for {
		b, err := g.r.ReadByte()
		if err != nil {
			return "", err
		}
		if b == '$' {
			break
		}
	}
	data, err := g.r.ReadString('#')
	if err != nil {
		return "", err
	}
	data = data[:len(data)-1]
	var sumHex [2]byte
	if _, err := io.ReadFull(g.r, sumHex[:]); err != nil {
		return "", err
	}
	var sum byte
	for i := 0; i < len(data); i++ {
		sum += data[i]
	}
	if want := fmt.Sprintf("%02x", sum); want != string(sumHex[:]) {
		g.c.Write([]byte{'-'})
		return "", fmt.Errorf("gdbstub: packet %.20q: checksum %s, want %s", data, sumHex[:], want)
	}
	_, err = g.c.Write([]byte{'+'})
	return data, err
}

// stop interrupts the running CPU and waits for its stop reply.
func (g *gdbRemote) stop() error {
	if _, err := g.c.Write([]byte{0x03}); err != nil {
		return err
	}
	reply, err := g.recv()
	if err != nil {
		return err
	}
	if len(reply) > 0 && (reply[0] == 'W' || reply[0] == 'X') {
		return io.EOF // the guest is gone
	}
	return nil
}

// resume lets the stopped CPU go on; the stub answers only at its next
// stop.
func (g *gdbRemote) resume() error { return g.send("c") }

// amd64PC is rip in QEMU's x86-64 register block ('g'): sixteen 8-byte
// general registers, then rip, each as little-endian hex.
const amd64PC = 16

// pc reads the stopped CPU's program counter.
func (g *gdbRemote) pc() (uint64, error) {
	if err := g.send("g"); err != nil {
		return 0, err
	}
	regs, err := g.recv()
	if err != nil {
		return 0, err
	}
	return regAt(regs, amd64PC)
}

// regAt decodes the i-th 8-byte register of a 'g' answer.
func regAt(regs string, i int) (uint64, error) {
	if len(regs) < (i+1)*16 {
		return 0, errors.New("gdbstub: register block too short")
	}
	b, err := hex.DecodeString(regs[i*16 : (i+1)*16])
	if err != nil {
		return 0, fmt.Errorf("gdbstub: register %d: %w", i, err)
	}
	var v uint64
	for j := 7; j >= 0; j-- {
		v = v<<8 | uint64(b[j])
	}
	return v, nil
}

// readMem reads n bytes of the stopped CPU's memory at addr, a virtual
// address of the process it is running.
func (g *gdbRemote) readMem(addr uint64, n int) ([]byte, error) {
	if err := g.send(fmt.Sprintf("m%x,%x", addr, n)); err != nil {
		return nil, err
	}
	reply, err := g.recv()
	if err != nil {
		return nil, err
	}
	if len(reply) == 3 && reply[0] == 'E' {
		return nil, fmt.Errorf("gdbstub: read %#x: error %s: %w", addr, reply[1:], errUnreadable)
	}
	b, err := hex.DecodeString(reply)
	if err != nil {
		return nil, fmt.Errorf("gdbstub: read %#x: %w", addr, err)
	}
	return b, nil
}

// sample reads the stopped CPU's program counter and, when it lies in
// text, the bytes there up to codeBytes, within its page: none when they
// cannot be read.
func (g *gdbRemote) sample(text [2]uint64) (sample, error) {
	pc, err := g.pc()
	if err != nil || pc < text[0] || pc >= text[1] {
		return sample{pc: pc}, err
	}
	n := min(codeBytes, 4096-int(pc%4096))
	code, err := g.readMem(pc, n)
	if errors.Is(err, errUnreadable) {
		code, err = nil, nil // not mapped in the running process
	}
	return sample{pc: pc, code: code}, err
}

// errUnreadable is the stub's answer to a read of memory it cannot reach.
var errUnreadable = errors.New("not readable")
