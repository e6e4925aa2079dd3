package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The torture test: a child process writes to the store as fast as it can
// and is killed with SIGKILL at a random moment, over and over, on the same
// data dir. Environment:
//
//	TRELLIS_TORTURE_ROUNDS  number of kills (default 20; 0 skips the test)
//	TRELLIS_TORTURE_SEED    seed of the random kill points (default: random, logged)
//
// `go test -short` skips it.
const (
	envTortureRounds = "TRELLIS_TORTURE_ROUNDS"
	envTortureSeed   = "TRELLIS_TORTURE_SEED"
	envTortureDir    = "TRELLIS_TORTURE_DIR"  // set for the child: its data dir
	envTortureMode   = "TRELLIS_TORTURE_MODE" // set for the child: "kv" or "mixed"

	defaultTortureRounds = 20
	tortureActor         = "torture"
)

// TestTorture kills a writing child process at random points and checks,
// after each kill, that the store opens (no ErrCorrupt: bbolt's commits are
// atomic and Open's verification agrees) and that no acknowledged write was
// lost.
//
// The child increments a counter and prints each value KVIncrement returned,
// one line per write, only after the call returned: a printed value is an
// acknowledged write. After the kill the counter must equal the last printed
// value, or that value plus one: the increment in flight when SIGKILL came
// may have committed (its meta page written) without its acknowledgement
// being printed. Anything else is a lost write (less) or a phantom one
// (more). Rounds alternate between increments alone and "mixed" rounds,
// where other goroutines of the child concurrently write actors,
// capability state and multi-page key-value values (overflow pages, free
// list reuse); each of those streams is checked the same way. Some kills
// land while the child opens the store and writes the last good copy; the
// copy must verify after every kill.
//
// SIGKILL tests atomicity against a process crash. It does not drop the
// kernel's page cache, so it cannot show what a power cut does to writes
// that were not fsynced: that part rests on bbolt fsyncing every commit
// (NoSync stays false) and on the data dir being fsynced after renames.
func TestTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test: skipped with -short")
	}
	rounds := defaultTortureRounds
	if v := os.Getenv(envTortureRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("%s=%q: want a count", envTortureRounds, v)
		}
		rounds = n
	}
	if rounds == 0 {
		t.Skipf("%s=0", envTortureRounds)
	}
	seed := rand.Uint64()
	if v := os.Getenv(envTortureSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envTortureSeed, v, err)
		}
	}
	t.Logf("%d rounds, %s=%d", rounds, envTortureSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	var state tortureState
	start := time.Now()
	for round := range rounds {
		mode := "kv"
		if round%2 == 1 {
			mode = "mixed"
		}
		// The kill point: one in ten while the process starts, two in ten
		// while it opens the store and writes the last good copy (timed
		// from the previous rounds), the others after a random number of
		// acknowledged increments.
		var kill killPoint
		switch r := rng.IntN(10); {
		case r == 0:
			kill = killPoint{stream: "start", delay: time.Duration(rng.IntN(30_000)) * time.Microsecond}
		case r <= 2:
			kill = killPoint{stream: "phase", value: 0, delay: time.Duration(rng.Int64N(int64(state.startup*3/2) + 1))}
		default:
			kill = killPoint{stream: "counter", value: state.counter + 1 + rng.Int64N(300), delay: time.Duration(rng.IntN(1000)) * time.Microsecond}
		}
		acks := runTortureChild(t, dir, mode, kill, &state.startup)
		if t.Failed() {
			return
		}
		state.check(t, round, dir, acks)
		if t.Failed() {
			t.Logf("round %d (%s, kill %+v) failed; seed %d", round, mode, kill, seed)
			return
		}
	}
	t.Logf("%d rounds in %v: counter at %d, actor revision %d, cap-state %d, big values %d; "+
		"kills: %d during Open, %d during SnapshotLastGood; %d writes committed but not acknowledged",
		rounds, time.Since(start).Round(time.Millisecond), state.counter, state.revision, state.capSeq, state.bigSeq,
		state.inOpen, state.inSnapshot, state.inFlight)
}

// tortureAcks are the last acknowledged value of each stream of writes in
// one round (-1: none acknowledged in the round).
// The stream "phase" counts the child's start: 0 before Open, 1 once the
// store is open, 2 once the last good copy is written.
type tortureAcks map[string]int64

// tortureState is what the store must hold, as checked after each round.
type tortureState struct {
	counter, revision, capSeq, bigSeq int64
	// Figures for the log: writes that committed unacknowledged, rounds
	// killed while the child opened the store, and while it wrote the last
	// good copy.
	inFlight, inOpen, inSnapshot int
	// startup is the longest time the child took from "phase 0" (about to
	// open) to "phase 2" (last good copy written).
	startup time.Duration
}

// killPoint says when to kill the child: delay after it acknowledged value
// on stream ("start": after the process started).
type killPoint struct {
	stream string
	value  int64
	delay  time.Duration
}

// check opens the store after a kill and compares it with the acks.
func (st *tortureState) check(t *testing.T, round int, dir string, acks tortureAcks) {
	t.Helper()
	switch phase, ok := acks["phase"]; {
	case !ok:
	case phase == 0:
		st.inOpen++
	case phase == 1:
		st.inSnapshot++
	}
	s, err := Open(dir, &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
	}
	defer s.Close()
	lg := filepath.Join(dir, LastGoodFileName)
	if _, err := os.Stat(lg); err == nil {
		if err := verifyPath(lg); err != nil {
			t.Errorf("round %d: the last good copy does not verify: %v", round, err)
		}
	}

	// expect checks one stream: stored must be the last ack, or one more.
	expect := func(name string, prev *int64, stored int64) {
		last := *prev
		if a, ok := acks[name]; ok && a >= 0 {
			last = a
		}
		if stored == last+1 {
			st.inFlight++
		}
		if stored != last && stored != last+1 {
			t.Errorf("round %d: %s = %d after the kill; last acknowledged %d (want it or one more)", round, name, stored, last)
		}
		*prev = stored
	}

	v, ok, err := s.KVGet(tortureActor, []byte("n"))
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	var n int64
	if ok {
		if n, err = decodeCounter(v); err != nil {
			t.Fatalf("round %d: counter %q: %v", round, v, err)
		}
	}
	expect("counter", &st.counter, n)

	a, err := s.Actor(tortureActor)
	switch {
	case errors.Is(err, ErrNotFound):
		a.Revision = 0
	case err != nil:
		t.Fatalf("round %d: %v", round, err)
	}
	expect("actor", &st.revision, int64(a.Revision))

	caps, err := s.CapStateList("timer")
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	var capSeq int64
	for _, c := range caps {
		if c.Actor == tortureActor && c.ID == "seq" {
			if capSeq, err = strconv.ParseInt(string(c.Value), 10, 64); err != nil {
				t.Fatalf("round %d: cap-state %q: %v", round, c.Value, err)
			}
		}
	}
	expect("cap", &st.capSeq, capSeq)

	// The big values: the newest must be the last acknowledged (or the one
	// in flight), and every value must be whole.
	var bigSeq int64
	keys, err := s.KVKeys(tortureActor+"-big", nil, nil, MaxKVPage)
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	for _, k := range keys {
		v, _, err := s.KVGet(tortureActor+"-big", k)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		seq, err := parseBigValue(v)
		if err != nil {
			t.Fatalf("round %d: big value %s: %v", round, k, err)
		}
		bigSeq = max(bigSeq, seq)
	}
	expect("big", &st.bigSeq, bigSeq)
}

// bigValue is the value of big write seq: the seq in 8 digits, repeated to
// a size between 3 and 19 KiB that depends on seq.
func bigValue(seq int64) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "%08d", seq), (3<<10+int(seq*7919%(16<<10)))/8)
}

func parseBigValue(v []byte) (int64, error) {
	if len(v) < 8 {
		return 0, fmt.Errorf("%d bytes", len(v))
	}
	seq, err := strconv.ParseInt(string(v[:8]), 10, 64)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(v, bigValue(seq)) {
		return 0, fmt.Errorf("torn: %d bytes, not the value of write %d", len(v), seq)
	}
	return seq, nil
}

// runTortureChild starts the child on dir, kills it at kill, and returns
// the last acknowledged value of each stream. It raises *startup to the
// time the child took to open the store and write the last good copy.
func runTortureChild(t *testing.T, dir, mode string, kill killPoint, startup *time.Duration) tortureAcks {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTortureChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envTortureDir+"="+dir, envTortureMode+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // the child exits when it closes: no orphan
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			// Under qemu-user without binfmt (make cross-test) the test
			// binary cannot start itself.
			t.Skipf("cannot re-execute the test binary: %v", err)
		}
		t.Fatal(err)
	}

	acks := tortureAcks{}
	lines := make(chan string)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr = sc.Err()
	})
	var parseErr error
	var opening time.Time
	handle := func(line string) (stream string, n int64) {
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "ack "), " ")
		if !strings.HasPrefix(line, "ack ") || !ok {
			if strings.HasPrefix(line, "error ") {
				parseErr = errors.New(line)
			}
			return "", 0 // test framework output
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			parseErr = fmt.Errorf("line %q: %v", line, err)
			return "", 0
		}
		if prev, seen := acks[name]; seen && n != prev+1 {
			parseErr = fmt.Errorf("%s acknowledged %d after %d", name, n, prev)
		}
		acks[name] = n
		switch {
		case name == "phase" && n == 0:
			opening = time.Now()
		case name == "phase" && n == 2:
			*startup = max(*startup, time.Since(opening))
		}
		return name, n
	}

	var timer <-chan time.Time
	if kill.stream == "start" {
		timer = time.After(kill.delay)
	}
	deadline := time.After(30 * time.Second)
	for killed := false; !killed; {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("the child exited before the kill: %v\nstderr:\n%s", parseErr, stderr.String())
			}
			if stream, n := handle(line); timer == nil && stream == kill.stream && n >= kill.value {
				timer = time.After(kill.delay)
			}
		case <-timer:
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no kill point within 30s (acknowledged: %v)\nstderr:\n%s", acks, stderr.String())
		}
	}
	for line := range lines { // what the child wrote before it died
		handle(line)
	}
	wg.Wait()
	_ = cmd.Wait()
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		t.Fatalf("reading the child: %v", readErr)
	}
	if parseErr != nil {
		t.Fatalf("child: %v\nstderr:\n%s", parseErr, stderr.String())
	}
	if strings.Contains(stderr.String(), "DATA RACE") {
		t.Fatalf("the child reported a data race:\n%s", stderr.String())
	}
	return acks
}

// TestTortureChild is the child of TestTorture; without its environment it
// skips. It writes until it is killed, printing "ack STREAM VALUE" after
// each write returns.
func TestTortureChild(t *testing.T) {
	dir := os.Getenv(envTortureDir)
	if dir == "" {
		t.Skip("runs as the child of TestTorture")
	}
	// Exit when the parent goes away (it holds our stdin open).
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fail := func(err error) {
		// One write, then exit: the parent reads the reason.
		os.Stdout.Write([]byte("error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"))
		os.Exit(3)
	}
	// ack writes one line with one write(2): lines from several goroutines
	// never interleave, and nothing is buffered when SIGKILL comes.
	ack := func(stream string, v int64) {
		if _, err := os.Stdout.Write(fmt.Appendf(nil, "ack %s %d\n", stream, v)); err != nil {
			os.Exit(4)
		}
	}

	ack("phase", 0)
	s, err := Open(dir, &Options{Timeout: 10 * time.Second})
	if err != nil {
		fail(err)
	}
	ack("phase", 1)
	if _, _, err := s.SnapshotLastGood(); err != nil { // as the agent does at each start
		fail(err)
	}
	ack("phase", 2)

	if os.Getenv(envTortureMode) == "mixed" {
		d, err := s.PutArtifact([]byte("\x00asm\x01\x00\x00\x00torture"))
		if err != nil {
			fail(err)
		}
		a, err := s.Actor(tortureActor)
		if err != nil && !errors.Is(err, ErrNotFound) {
			fail(err)
		}
		go func() {
			for rev := a.Revision + 1; ; rev++ {
				if err := s.PutActor(Actor{Name: tortureActor, Artifact: d, Revision: rev}); err != nil {
					fail(err)
				}
				ack("actor", int64(rev))
			}
		}()
		caps, err := s.CapStateList("timer")
		if err != nil {
			fail(err)
		}
		var capSeq int64
		for _, c := range caps {
			if c.Actor == tortureActor && c.ID == "seq" {
				capSeq, _ = strconv.ParseInt(string(c.Value), 10, 64)
			}
		}
		go func() {
			for seq := capSeq + 1; ; seq++ {
				if err := s.CapStatePut("timer", tortureActor, "seq", strconv.AppendInt(nil, seq, 10)); err != nil {
					fail(err)
				}
				ack("cap", seq)
			}
		}()
		var bigSeq int64
		keys, err := s.KVKeys(tortureActor+"-big", nil, nil, MaxKVPage)
		if err != nil {
			fail(err)
		}
		for _, k := range keys {
			v, _, err := s.KVGet(tortureActor+"-big", k)
			if err != nil {
				fail(err)
			}
			seq, err := parseBigValue(v)
			if err != nil {
				fail(err)
			}
			bigSeq = max(bigSeq, seq)
		}
		go func() {
			for seq := bigSeq + 1; ; seq++ {
				// 40 keys, rewritten in turn: pages are freed and reused.
				key := fmt.Appendf(nil, "k%02d", seq%40)
				if err := s.KVSet(tortureActor+"-big", key, bigValue(seq)); err != nil {
					fail(err)
				}
				ack("big", seq)
			}
		}()
	}
	for {
		n, err := s.KVIncrement(tortureActor, []byte("n"), 1)
		if err != nil {
			fail(err)
		}
		ack("counter", n)
	}
}
