// gobpayload: Go's own encoding/gob as the oracle of vxmon's agent-socket code (standard library only).
//
//	go run gobpayload.go decode  < stream > lines    one line per Payload: "type cpu lost hexdata"
//	go run gobpayload.go encode  < lines  > stream   the reverse, one Encode per line, as Cilium's agent
//	go run gobpayload.go reencode < stream > stream  decode, then encode every payload with a new encoder
//
// Payload is Cilium's pkg/monitor/payload.Payload (listener protocol 1.2). Each message is decoded into
// a fresh value, so fields omitted by gob read as zero.
package main

import (
	"bufio"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

type Payload struct {
	Data []byte
	CPU  int
	Lost uint64
	Type int
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gobpayload:", err)
	os.Exit(1)
}

func decodeAll(r io.Reader, each func(Payload)) {
	dec := gob.NewDecoder(bufio.NewReader(r))
	for {
		var p Payload
		if err := dec.Decode(&p); err == io.EOF {
			return
		} else if err != nil {
			fail(err)
		}
		each(p)
	}
}

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: gobpayload decode|encode|reencode"))
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch os.Args[1] {
	case "decode":
		decodeAll(os.Stdin, func(p Payload) {
			fmt.Fprintf(out, "%d %d %d %s\n", p.Type, p.CPU, p.Lost, hex.EncodeToString(p.Data))
		})
	case "reencode":
		enc := gob.NewEncoder(out)
		decodeAll(os.Stdin, func(p Payload) {
			if err := enc.Encode(&p); err != nil {
				fail(err)
			}
		})
	case "encode":
		enc := gob.NewEncoder(out)
		scanner := bufio.NewScanner(os.Stdin)
		scanner.Buffer(make([]byte, 1<<20), 1<<24)
		for scanner.Scan() {
			f := strings.Fields(scanner.Text())
			if len(f) < 3 {
				continue
			}
			var p Payload
			var err error
			if p.Type, err = strconv.Atoi(f[0]); err != nil {
				fail(err)
			}
			if p.CPU, err = strconv.Atoi(f[1]); err != nil {
				fail(err)
			}
			if p.Lost, err = strconv.ParseUint(f[2], 10, 64); err != nil {
				fail(err)
			}
			if len(f) > 3 {
				if p.Data, err = hex.DecodeString(f[3]); err != nil {
					fail(err)
				}
			}
			if err := enc.Encode(&p); err != nil {
				fail(err)
			}
		}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}
