package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of ForwarderOptions.
const (
	DefaultHubDomain            = "hub"
	DefaultForwarderWindow      = 512
	DefaultForwarderWindowBytes = 4 << 20
	DefaultForwarderAckTimeout  = 5 * time.Second
	DefaultForwarderRetry       = 200 * time.Millisecond
)

// ForwarderConsumer is the name of the forwarder's durable consumer on the
// device's telemetry stream. The stream is a work queue, so it admits no
// other consumer.
const ForwarderConsumer = "trellis-forwarder"

const (
	forwarderTick     = 50 * time.Millisecond // timeouts, uplink changes, retries
	backlogRefresh    = time.Second           // Stats' backlog figures
	sessionRetry      = time.Second           // after a local failure
	localAckWait      = 2 * time.Minute       // the consumer's; the window is held longer in outages
	checkpointTimeout = time.Second
	dropLogEvery      = time.Minute
)

// ForwarderOptions configure a Forwarder. Server, Lattice and Host are
// required; zero fields otherwise mean the defaults.
type ForwarderOptions struct {
	// Server is the device's embedded server: JetStream on, a leaf of the
	// hub. The forwarder opens its own in-process connection to it and
	// watches its uplink, so that it resends at once over a new one.
	Server *Server
	// Lattice and Host name the device's telemetry subjects.
	Lattice, Host string
	// HubDomain is the hub's JetStream domain (default DefaultHubDomain).
	HubDomain string
	// Window bounds the messages sent to the hub and not yet acknowledged
	// (default DefaultForwarderWindow); 1 sends one message at a time.
	Window int
	// WindowBytes bounds their size (default DefaultForwarderWindowBytes);
	// one larger message still goes alone.
	WindowBytes int
	// AckTimeout is how long the forwarder waits for the hub's
	// acknowledgement before it sends again (default
	// DefaultForwarderAckTimeout). A lost uplink is noticed sooner.
	AckTimeout time.Duration
	// RetryInterval is the pause between attempts while the hub is
	// unreachable (default DefaultForwarderRetry).
	RetryInterval time.Duration
	// Logger receives the forwarder's logs; nil discards them.
	Logger *slog.Logger
}

// Validate checks o without applying defaults.
func (o ForwarderOptions) Validate() error {
	if o.Server == nil {
		return errors.New("mesh: forwarder: no server")
	}
	if !o.Server.JetStream() {
		return fmt.Errorf("mesh: forwarder: server %s has no JetStream", o.Server.Name())
	}
	if err := ValidateToken("lattice", o.Lattice); err != nil {
		return err
	}
	if err := ValidateToken("host", o.Host); err != nil {
		return err
	}
	if o.HubDomain != "" {
		if err := ValidateToken("hub domain", o.HubDomain); err != nil {
			return err
		}
	}
	switch {
	case o.Window < 0:
		return fmt.Errorf("mesh: forwarder: window %d: must not be negative", o.Window)
	case o.WindowBytes < 0:
		return fmt.Errorf("mesh: forwarder: window bytes %d: must not be negative", o.WindowBytes)
	case o.AckTimeout < 0:
		return fmt.Errorf("mesh: forwarder: ack timeout %s: must not be negative", o.AckTimeout)
	case o.RetryInterval < 0:
		return fmt.Errorf("mesh: forwarder: retry interval %s: must not be negative", o.RetryInterval)
	}
	return nil
}

func (o ForwarderOptions) withDefaults() ForwarderOptions {
	if o.HubDomain == "" {
		o.HubDomain = DefaultHubDomain
	}
	if o.Window == 0 {
		o.Window = DefaultForwarderWindow
	}
	if o.WindowBytes == 0 {
		o.WindowBytes = DefaultForwarderWindowBytes
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultForwarderAckTimeout
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultForwarderRetry
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Forwarder moves a device's telemetry backlog to the hub: a durable pull
// consumer (ForwarderConsumer, explicit acks) reads the device's telemetry
// stream in order, each message is published to the hub's subject
// (ForwardedTelemetrySubject, same topic) with its message id, and it is
// acknowledged on the device, which deletes it, only once the hub's stream
// has acknowledged storing it. Nothing is deleted on the device that the hub
// has not stored.
//
// Up to Window messages are in flight at once on one connection, which keeps
// their order. On any failure (no route to the hub, an error from its stream,
// no acknowledgement within AckTimeout, a new uplink connection while
// messages were in flight) the forwarder stops sending, asks the hub for the
// device's last stored message, skips what the hub has, and sends the first
// message not acknowledged alone until the hub takes it; then it sends the
// rest in order at full speed. While the hub is unreachable it tries every
// RetryInterval, and at once when the uplink reconnects. Messages the hub
// already had (an acknowledgement lost on the way back) are dropped by its
// duplicate window and counted as Duplicates. The hub's stream therefore holds
// each message once, in the device's order.
//
// One failure is beyond the forwarder's reach: a message lost on the way to
// the hub followed by a later one stored before the first failure is known.
// It would take the uplink to reconnect within one burst of sends (the leaf
// waits its reconnect interval first, 250 ms by default), or the hub's
// stream refusing one message and storing the next. Such a message is
// counted in Reordered, and logged.
//
// Gaps in the device stream's sequence numbers are messages the stream
// discarded before they were forwarded (drop_oldest, MaxAge): they are
// counted as Dropped. Messages the hub refuses for good (larger than its
// limits) are acknowledged on the device, logged and counted as Skipped, so
// that they do not block the queue.
//
// Run it once per device, after EnsureDeviceTelemetry.
type Forwarder struct {
	o   ForwarderOptions
	log *slog.Logger

	running atomic.Bool
	// dropMark is where the counting of dropped messages has got to in
	// the stream created at dropCreated, so that a new session, which
	// starts again from the consumer's ack floor, does not count a gap
	// twice. Owned by Run.
	dropMark    uint64
	dropCreated time.Time
	// noCheckpoint makes the forwarder resend without asking the hub first,
	// leaving replays to the hub's duplicate window (tests).
	noCheckpoint bool

	mu sync.Mutex
	st ForwarderStats
}

// ForwarderStats describe a Forwarder's progress.
type ForwarderStats struct {
	// Backlog is the number of messages in the device's stream: those the
	// hub has not acknowledged yet. Backlog and Oldest are read about every
	// second while Run runs.
	Backlog uint64
	// Oldest is when the oldest of them was stored; zero when none.
	Oldest time.Time
	// OfflineSince is when forwarding started to fail, while there was
	// something to forward; zero while the hub takes messages or nothing
	// waits. Offline is the time since then.
	OfflineSince time.Time
	Offline      time.Duration
	// Forwarded counts the messages the hub has stored since the
	// forwarder was made.
	Forwarded uint64
	// Duplicates counts messages the hub already had when they were sent
	// or about to be sent again (not stored twice).
	Duplicates uint64
	// Dropped counts messages the device's stream discarded (drop_oldest,
	// MaxAge) before they were forwarded: the gaps in the stream's
	// sequence numbers that the forwarder sees. At its start it counts
	// from where its consumer's acknowledgements stopped, but JetStream
	// moves that point past some discarded messages, so drops while no
	// forwarder ran may be undercounted.
	Dropped uint64
	// Skipped counts messages the hub refused for good.
	Skipped uint64
	// Reordered counts messages the hub stored out of the device's order.
	Reordered uint64
	// LastError is why forwarding last failed, at LastErrorAt.
	LastError   string
	LastErrorAt time.Time
}

// NewForwarder checks o and returns a forwarder that Run starts.
func NewForwarder(o ForwarderOptions) (*Forwarder, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	return &Forwarder{
		o:   o,
		log: o.Logger.With("subsystem", "telemetry", "host", o.Host),
	}, nil
}

// Stats returns the forwarder's figures.
func (f *Forwarder) Stats() ForwarderStats {
	f.mu.Lock()
	st := f.st
	f.mu.Unlock()
	if !st.OfflineSince.IsZero() {
		st.Offline = time.Since(st.OfflineSince)
	}
	return st
}

// Run forwards until ctx ends, then returns nil; messages in flight stay on
// the device and are sent again by the next Run. Local failures (the stream
// missing or recreated, the consumer deleted) are logged and retried every
// second. Run fails only when it cannot connect to the server or is
// already running.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("mesh: forwarder: already running")
	}
	defer f.running.Store(false)
	nc, err := f.o.Server.Connect(nats.Name("trellis-telemetry-forwarder"))
	if err != nil {
		return fmt.Errorf("mesh: forwarder: %w", err)
	}
	defer nc.Close()
	local, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("mesh: forwarder: %w", err)
	}
	lastLogged := ""
	for {
		err := f.session(ctx, nc, local)
		if ctx.Err() != nil {
			return nil
		}
		f.noteError(err)
		if msg := err.Error(); msg != lastLogged {
			f.log.Warn("telemetry forwarder restarting", "err", err)
			lastLogged = msg
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sessionRetry):
		}
	}
}

// failed records a failure: the error and, on the first of a streak, the
// start of the outage.
func (f *Forwarder) failed(err error) (first bool) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.LastError, f.st.LastErrorAt = err.Error(), now
	if f.st.OfflineSince.IsZero() {
		f.st.OfflineSince = now
		return true
	}
	return false
}

// noteError records an error that is not the hub's.
func (f *Forwarder) noteError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.LastError, f.st.LastErrorAt = err.Error(), time.Now()
}

// reached records that the hub answered: the end of an outage, if any.
func (f *Forwarder) reached() (outage time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.OfflineSince.IsZero() {
		return 0
	}
	outage = time.Since(f.st.OfflineSince)
	f.st.OfflineSince = time.Time{}
	return outage
}

func (f *Forwarder) count(fn func(st *ForwarderStats)) {
	f.mu.Lock()
	fn(&f.st)
	f.mu.Unlock()
}

// fwdItem is one message of the window: read from the device's stream, not
// yet acknowledged there.
type fwdItem struct {
	msg  jetstream.Msg
	seq  uint64
	out  *nats.Msg // what goes to the hub
	size int

	sentGen uint64 // generation it was last sent in; 0 never
	sentAt  time.Time
	acked   bool // the hub has it (or refused it for good: skip)
	dup     bool
	skip    bool
}

// Modes of a session.
const (
	modeLive   = iota // send as messages come
	modeResync        // send nothing; try again when due
	modeProbe         // the head alone is out; the rest waits for its answer
)

// session is one consumer's lifetime on the device's stream.
type session struct {
	f       *Forwarder
	nc      *nats.Conn
	stream  jetstream.Stream
	created time.Time
	inbox   string // replies come to inbox.<gen>.<seq>
	apiGet  string // the hub stream's direct get subject
	lastFor string // this device's forwarded subjects

	next     uint64 // the stream sequence expected next; 0 unknown
	win      []*fwdItem
	winBytes int

	mode       int
	gen        uint64 // bumped at each attempt: errors of older ones are stale
	runEpoch   uint64 // uplink connection the in-flight messages went out on
	probeEpoch uint64
	probeSeq   uint64 // the message sent alone
	tryEpoch   uint64 // uplink connection at the last attempt
	nextTry    time.Time
	checkpoint bool
	silent     bool // the hub did not answer the last checkpoint
	// distrust is the highest sequence the hub stored while an earlier
	// message was still unacknowledged: the hub's last message does not
	// prove that messages up to it are stored.
	distrust uint64

	dropLogged  time.Time
	dropPending uint64
}

func (f *Forwarder) session(ctx context.Context, nc *nats.Conn, local jetstream.JetStream) error {
	o := f.o
	stream, err := local.Stream(ctx, TelemetryStream)
	if err != nil {
		return fmt.Errorf("mesh: forwarder: device stream %s: %w", TelemetryStream, err)
	}
	info := stream.CachedInfo()
	if want := TelemetryWildcard(o.Lattice, o.Host); len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != want {
		return fmt.Errorf("mesh: forwarder: device stream %s has subjects %q, want [%s]", TelemetryStream, info.Config.Subjects, want)
	}
	f.setBacklog(info.State)
	s := &session{
		f:          f,
		nc:         nc,
		stream:     stream,
		created:    info.Created,
		inbox:      nc.NewInbox(),
		apiGet:     "$JS." + o.HubDomain + ".API.DIRECT.GET." + TelemetryStream,
		lastFor:    ForwardedTelemetryWildcard(o.Lattice, o.Host),
		mode:       modeResync, // start with the hub's checkpoint
		checkpoint: !f.noCheckpoint,
	}
	cons, err := s.resetConsumer(ctx)
	if err != nil {
		return err
	}

	// The hub's acknowledgements, in the order it sent them.
	replies := make(chan *nats.Msg, 2*o.Window+16)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	sub, err := nc.Subscribe(s.inbox+".*.*", func(m *nats.Msg) {
		select {
		case replies <- m:
		case <-done:
		}
	})
	if err != nil {
		return fmt.Errorf("mesh: forwarder: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("mesh: forwarder: %w", err)
	}

	// The device's messages, in stream order. A missing heartbeat (the
	// reader may wait long on a full window) only makes the iterator pull
	// again.
	it, err := cons.Messages(jetstream.PullMaxMessages(readAhead(o.Window)), jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return fmt.Errorf("mesh: forwarder: read %s: %w", TelemetryStream, err)
	}
	defer it.Stop() // runs before wg.Wait: the reader's Next returns
	in := make(chan jetstream.Msg)
	readErr := make(chan error, 1)
	wg.Go(func() {
		for {
			m, err := it.Next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case in <- m:
			case <-done:
				return
			}
		}
	})

	tick := time.NewTicker(forwarderTick)
	defer tick.Stop()
	nextRefresh := time.Now().Add(backlogRefresh)
	for {
		var room chan jetstream.Msg
		if len(s.win) < o.Window && s.winBytes < o.WindowBytes {
			room = in
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("mesh: forwarder: read %s: %w", TelemetryStream, err)
		case m := <-room:
			if err := s.add(m); err != nil {
				return err
			}
			// Take what else is ready, then send it as one burst.
		more:
			for len(s.win) < o.Window && s.winBytes < o.WindowBytes {
				select {
				case m := <-in:
					if err := s.add(m); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if s.mode == modeResync && !time.Now().Before(s.nextTry) {
				s.attempt(ctx)
			} else {
				s.flush()
			}
		case r := <-replies:
			s.reply(r)
		drain:
			for {
				select {
				case r := <-replies:
					s.reply(r)
				default:
					break drain
				}
			}
			if err := s.settle(); err != nil {
				return err
			}
		case now := <-tick.C:
			s.tick(ctx, now)
			if err := s.settle(); err != nil {
				return err
			}
			if now.After(nextRefresh) {
				nextRefresh = now.Add(backlogRefresh)
				s.refreshBacklog(ctx)
			}
		}
	}
}

// resetConsumer replaces the forwarder's consumer with a new one that
// delivers the whole backlog at once (the old one would redeliver what it
// had delivered only after its ack wait), and learns from the old one where
// forwarding stopped, to count what the stream dropped meanwhile.
func (s *session) resetConsumer(ctx context.Context) (jetstream.Consumer, error) {
	floor, had := uint64(0), false
	switch old, err := s.stream.Consumer(ctx, ForwarderConsumer); {
	case err == nil:
		floor, had = old.CachedInfo().AckFloor.Stream, true
		if err := s.stream.DeleteConsumer(ctx, ForwarderConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("mesh: forwarder: delete consumer: %w", err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("mesh: forwarder: consumer: %w", err)
	}
	cons, err := s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       ForwarderConsumer,
		Description:   "Trellis telemetry forwarder to the hub",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       localAckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.f.o.Window + 2*readAhead(s.f.o.Window) + 64,
	})
	if err != nil {
		return nil, fmt.Errorf("mesh: forwarder: create consumer: %w", err)
	}
	if !had {
		floor = cons.CachedInfo().AckFloor.Stream
	}
	s.next = floor + 1
	return cons, nil
}

// readAhead is how many messages the reader buffers beyond the window.
func readAhead(window int) int { return max(window, 256) }

// add takes a message from the device's stream into the window.
func (s *session) add(m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("mesh: forwarder: %w", err)
	}
	seq := meta.Sequence.Stream
	if seq < s.next {
		// Delivered again (the ack wait passed while it waited in the
		// window, or an ack of ours was lost).
		if s.find(seq) == nil {
			_ = m.Ack() // forwarded already
		}
		return nil
	}
	if seq > s.next {
		s.dropped(s.next, seq)
	}
	s.next = seq + 1
	out, err := s.forwarded(m, meta)
	if err != nil {
		// Not one of this device's telemetry subjects: the stream's
		// subjects were changed under us. Nothing sensible to forward.
		s.f.log.Warn("telemetry message skipped", "seq", seq, "err", err)
		s.f.count(func(st *ForwarderStats) { st.Skipped++ })
		_ = m.Ack()
		return nil
	}
	size := len(out.Data) + len(out.Subject)
	for k, vs := range out.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	s.win = append(s.win, &fwdItem{msg: m, seq: seq, out: out, size: size})
	s.winBytes += size
	return nil
}

// forwarded builds the hub's copy of m.
func (s *session) forwarded(m jetstream.Msg, meta *jetstream.MsgMetadata) (*nats.Msg, error) {
	o := s.f.o
	prefix := TelemetryWildcard(o.Lattice, o.Host)
	prefix = prefix[:len(prefix)-1] // "trellis.<l>.tm.<host>."
	topic, ok := strings.CutPrefix(m.Subject(), prefix)
	if !ok || topic == "" {
		return nil, fmt.Errorf("subject %q is not a telemetry subject of %s", m.Subject(), o.Host)
	}
	h := nats.Header{}
	for k, vs := range m.Headers() {
		if k == nats.MsgIdHdr {
			h[HeaderOriginMsgID] = vs
			continue
		}
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue // the device stream's directives
		}
		h[k] = vs
	}
	h.Set(nats.MsgIdHdr, TelemetryMsgID(o.Host, s.created, meta.Sequence.Stream))
	h.Set(jetstream.ExpectedStreamHeader, TelemetryStream)
	h.Set(HeaderHost, o.Host)
	h.Set(HeaderPublished, meta.Timestamp.UTC().Format(time.RFC3339Nano))
	return &nats.Msg{
		Subject: ForwardedTelemetrySubject(o.Lattice, o.Host, topic),
		Header:  h,
		Data:    m.Data(),
	}, nil
}

// dropped counts the messages from sequence lo to hi (excluded) that the
// stream discarded before they were read, unless counted already.
func (s *session) dropped(lo, hi uint64) {
	f := s.f
	if !f.dropCreated.Equal(s.created) {
		f.dropCreated, f.dropMark = s.created, 0
	}
	lo = max(lo, f.dropMark)
	f.dropMark = max(f.dropMark, hi)
	if hi <= lo {
		return
	}
	n := hi - lo
	f.count(func(st *ForwarderStats) { st.Dropped += n })
	s.dropPending += n
	if now := time.Now(); now.Sub(s.dropLogged) >= dropLogEvery {
		s.f.log.Warn("telemetry dropped before it was forwarded (buffer full or too old)", "messages", s.dropPending)
		s.dropLogged, s.dropPending = now, 0
	}
}

// find returns the window's item with stream sequence seq, or nil.
func (s *session) find(seq uint64) *fwdItem {
	i := sort.Search(len(s.win), func(i int) bool { return s.win[i].seq >= seq })
	if i < len(s.win) && s.win[i].seq == seq {
		return s.win[i]
	}
	return nil
}

// flush sends, in live mode, every message of the window not sent in this
// generation, as long as the uplink is the one the messages in flight went
// out on.
func (s *session) flush() {
	if s.mode != modeLive {
		return
	}
	first := -1
	inFlight := false
	for i, it := range s.win {
		if it.acked {
			continue
		}
		if it.sentGen == s.gen {
			inFlight = true
		} else if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return
	}
	epoch := uplinkConn(s.f.o.Server)
	if inFlight && epoch != s.runEpoch {
		// Whatever went out on the old connection and was not
		// acknowledged may be lost: sending more now could store it
		// ahead of them.
		s.fail(uplinkChanged(epoch))
		return
	}
	s.runEpoch = epoch
	now := time.Now()
	for _, it := range s.win[first:] {
		if it.acked || it.sentGen == s.gen {
			continue
		}
		if err := s.send(it, now); err != nil {
			s.fail(err)
			return
		}
	}
}

// tooLarge skips a message that cannot be sent at all: with the forwarder's
// headers it is over the bus's limit.
func (s *session) tooLarge(it *fwdItem, err error) bool {
	if !errors.Is(err, nats.ErrMaxPayload) {
		return false
	}
	s.f.log.Warn("telemetry message too large to forward; skipped", "seq", it.seq, "subject", it.out.Subject, "bytes", it.size)
	it.acked, it.skip = true, true
	return true
}

// send publishes it to the hub in the current generation.
func (s *session) send(it *fwdItem, now time.Time) error {
	it.out.Reply = s.inbox + "." + strconv.FormatUint(s.gen, 10) + "." + strconv.FormatUint(it.seq, 10)
	if err := s.nc.PublishMsg(it.out); err != nil {
		if s.tooLarge(it, err) {
			return nil
		}
		return err
	}
	it.sentGen, it.sentAt = s.gen, now
	return nil
}

// hubAck is the hub stream's answer to a publish.
type hubAck struct {
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error"`
}

// reply handles one answer from the hub.
func (s *session) reply(r *nats.Msg) {
	gen, seq, ok := s.parseReply(r.Subject)
	if !ok {
		return
	}
	it := s.find(seq)
	if it == nil || it.acked {
		return // popped already, or answered twice
	}
	var ack hubAck
	var err error
	switch {
	case len(r.Data) == 0 && r.Header.Get("Status") == "503":
		err = errors.New("the hub is unreachable (no responders)")
	case quickAck(r.Data, &ack):
	case json.Unmarshal(r.Data, &ack) != nil:
		err = fmt.Errorf("the hub's acknowledgement does not decode: %.100q", r.Data)
	case ack.Error != nil:
		err = fmt.Errorf("the hub refused: %w", ack.Error)
	case ack.Stream == "":
		err = fmt.Errorf("the hub's acknowledgement names no stream: %.100q", r.Data)
	}
	if err != nil {
		var api *jetstream.APIError
		if errors.As(err, &api) && (api.ErrorCode == jsErrCodeMsgExceedsMaximum || api.ErrorCode == jsErrCodeHeaderExceedsLimit) {
			// Sending it again would fail again and hold up the rest.
			s.f.log.Warn("telemetry message refused by the hub for good; skipped", "seq", seq, "subject", it.out.Subject, "err", err)
			it.acked, it.skip = true, true
			return
		}
		if gen != s.gen {
			return // from an attempt given up already
		}
		s.fail(err)
		return
	}
	// Stored (or stored before): a fact whatever the generation.
	it.acked, it.dup = true, ack.Duplicate
	if outage := s.f.reached(); outage > 0 {
		s.f.log.Info("telemetry forwarding resumed", "offline", outage.Round(time.Millisecond))
	}
	if !it.dup {
		if seq < s.distrust {
			s.f.count(func(st *ForwarderStats) { st.Reordered++ })
			s.f.log.Error("telemetry message stored by the hub after a later one", "seq", seq, "later", s.distrust)
		}
		if head := s.win[0]; head != it && !head.acked {
			s.distrust = max(s.distrust, seq)
		}
	}
}

// quickAck decodes the acknowledgement of a message stored for the first
// time exactly as nats-server writes it, {"stream":"S","domain":"D","seq":N}
// (domain optional), without encoding/json (a quarter of the forwarder's
// time otherwise). It returns false for anything else, left to
// encoding/json.
func quickAck(data []byte, ack *hubAck) bool {
	rest, ok := bytes.CutPrefix(data, []byte(`{"stream":"`))
	if !ok {
		return false
	}
	stream, rest, ok := quickString(rest)
	if !ok || stream == "" {
		return false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"domain":"`)); found {
		if _, rest, ok = quickString(r); !ok {
			return false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return false
	}
	digits, ok := bytes.CutSuffix(rest, []byte("}"))
	if !ok || !decimal(string(digits)) {
		return false
	}
	seq, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return false
	}
	ack.Stream, ack.Seq = stream, seq
	return true
}

// quickString reads a JSON string of printable ASCII without escapes, up to
// its closing quote.
func quickString(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return string(b[:i]), b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", nil, false
		}
	}
	return "", nil, false
}

// parseReply splits inbox.<gen>.<seq>.
func (s *session) parseReply(subject string) (gen, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(subject, s.inbox+".")
	if !found {
		return 0, 0, false
	}
	g, q, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	gen, err1 := strconv.ParseUint(g, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	return gen, seq, err1 == nil && err2 == nil
}

// pop acknowledges on the device the messages at the head of the window
// that the hub has.
func (s *session) pop() error {
	n := 0
	var fwd, dups, skipped uint64
	for _, it := range s.win {
		if !it.acked {
			break
		}
		if err := it.msg.Ack(); err != nil {
			return fmt.Errorf("mesh: forwarder: ack on the device: %w", err)
		}
		switch {
		case it.skip:
			skipped++
		case it.dup:
			fwd++
			dups++
		default:
			fwd++
		}
		s.winBytes -= it.size
		n++
	}
	if n == 0 {
		return nil
	}
	clear(s.win[:n])
	s.win = s.win[n:]
	if len(s.win) == 0 {
		s.win = nil // let the backing array go
		s.distrust = 0
	}
	s.f.count(func(st *ForwarderStats) {
		st.Forwarded += fwd
		st.Duplicates += dups
		st.Skipped += skipped
	})
	return nil
}

// settle pops what the hub has, and ends a probe that the hub answered.
func (s *session) settle() error {
	if err := s.pop(); err != nil {
		return err
	}
	if s.mode != modeProbe || len(s.win) > 0 && s.win[0].seq <= s.probeSeq {
		return nil
	}
	// The hub takes messages again: the rest goes, in order.
	s.mode, s.runEpoch = modeLive, s.probeEpoch
	if s.silent {
		// It takes publishes but does not answer direct gets (an older
		// stream without them, or no permission for the leaf): stop
		// asking, leave replays to its duplicate window.
		s.checkpoint = false
		s.f.log.Warn("the hub does not answer for its last telemetry message; relying on its duplicate window")
	}
	s.flush()
	return nil
}

// fail stops sending after a failure; attempt starts again when due.
func (s *session) fail(err error) {
	if s.f.failed(err) {
		s.f.log.Warn("telemetry forwarding failing; the backlog waits on the device", "err", err)
	}
	if s.mode != modeResync {
		s.mode = modeResync
		s.nextTry = time.Now().Add(s.f.o.RetryInterval)
	}
}

// tick notices timeouts and a new uplink, and makes the attempts that are
// due.
func (s *session) tick(ctx context.Context, now time.Time) {
	epoch := uplinkConn(s.f.o.Server)
	if len(s.win) > 0 {
		head := s.win[0]
		switch {
		case s.mode == modeLive && head.sentGen == s.gen && !head.acked && epoch != s.runEpoch:
			s.fail(uplinkChanged(epoch))
		case s.mode == modeProbe && epoch != s.probeEpoch:
			s.fail(uplinkChanged(epoch))
		case s.mode != modeResync && head.sentGen == s.gen && !head.acked && now.Sub(head.sentAt) > s.f.o.AckTimeout:
			s.fail(fmt.Errorf("no acknowledgement from the hub within %s", s.f.o.AckTimeout))
		}
	}
	if s.mode == modeResync && (!now.Before(s.nextTry) || epoch != s.tryEpoch && epoch != 0) {
		s.attempt(ctx)
	}
}

// attempt starts sending again after a failure (or at the start): it asks the
// hub what it has of this device, skips that, and sends the first message
// not acknowledged alone.
func (s *session) attempt(ctx context.Context) {
	if len(s.win) == 0 {
		return // nothing to send: wait for a message
	}
	s.gen++
	s.tryEpoch = uplinkConn(s.f.o.Server)
	s.nextTry = time.Now().Add(s.f.o.RetryInterval)
	s.silent = false
	if s.checkpoint {
		last, known, err := s.hubLast(ctx)
		switch {
		case err != nil:
			s.silent = errors.Is(err, context.DeadlineExceeded)
			s.f.failed(err)
		case known:
			s.f.reached()
			for _, it := range s.win {
				if it.seq > last {
					break
				}
				if !it.acked && it.seq > s.distrust {
					it.acked, it.dup = true, true
				}
			}
			if err := s.pop(); err != nil {
				s.f.failed(err)
			}
		}
	}
	if len(s.win) == 0 {
		s.mode = modeLive
		return
	}
	s.probeEpoch, s.probeSeq = s.tryEpoch, s.win[0].seq
	if err := s.send(s.win[0], time.Now()); err != nil {
		s.f.failed(err)
		return
	}
	s.mode = modeProbe
}

// hubLast asks the hub for the last message this device forwarded and returns
// its sequence in the device's stream; known is false when the hub has none
// from this stream (another stream incarnation, or none at all is 0, true).
func (s *session) hubLast(ctx context.Context) (last uint64, known bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{s.lastFor})
	r, err := s.nc.RequestWithContext(ctx, s.apiGet, req)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, false, errors.New("the hub is unreachable (no responders)")
		}
		return 0, false, fmt.Errorf("ask the hub for the last message: %w", err)
	}
	switch r.Header.Get("Status") {
	case "":
	case "404":
		return 0, true, nil // nothing from this device
	default:
		return 0, false, fmt.Errorf("ask the hub for the last message: status %s %s", r.Header.Get("Status"), r.Header.Get("Description"))
	}
	host, created, seq, err := ParseTelemetryMsgID(r.Header.Get(nats.MsgIdHdr))
	switch {
	case err != nil || host != s.f.o.Host:
		return 0, false, nil // not ours to interpret
	case created < s.created.UnixNano():
		return 0, true, nil // from an older stream: nothing of this one
	case created > s.created.UnixNano():
		return 0, false, nil
	}
	return seq, true, nil
}

// refreshBacklog reads the stream's state for Stats.
func (s *session) refreshBacklog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return
	}
	s.f.setBacklog(info.State)
	if info.State.Msgs == 0 && len(s.win) == 0 {
		s.f.reached() // nothing waits (MaxAge emptied the stream): not offline
	}
	// Messages before the stream's first that the forwarder has not read
	// were discarded (drop_oldest, MaxAge): count them now rather than
	// when it reads again, which may be after a long outage.
	if first := info.State.FirstSeq; first > s.next {
		s.dropped(s.next, first)
		s.next = first
	}
}

func (f *Forwarder) setBacklog(state jetstream.StreamState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Backlog, f.st.Oldest = state.Msgs, time.Time{}
	if state.Msgs > 0 {
		f.st.Oldest = state.FirstTime
	}
}

func uplinkChanged(epoch uint64) error {
	if epoch == 0 {
		return errors.New("the uplink went down while messages were in flight")
	}
	return errors.New("the uplink reconnected while messages were in flight")
}

// uplinkConn identifies s's current leafnode connection (the newest when
// there are several); 0 when there is none. A new connection, after a
// reconnect, always has a higher id.
func uplinkConn(s *Server) uint64 {
	lz, err := s.ns.Leafz(nil)
	if err != nil {
		return 0
	}
	var id uint64
	for _, l := range lz.Leafs {
		id = max(id, l.ID)
	}
	return id
}
