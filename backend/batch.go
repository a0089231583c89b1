package backend

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// readBatcher sends concurrent reads to the database together. At most
// maxActive queries are in flight; a read that arrives while they all are
// busy waits in a queue, and the next query takes everything queued (up to
// maxBatch reads) at once. So a lone read goes out at once, alone, and never waits for a
// batch to fill, while under load one round trip through HAProxy and one
// query execution on a follower serve many requests: the per-query costs
// (syscalls on every hop, parse/bind/execute, a wakeup per process) are
// paid once per batch instead of once per request.
//
// A query that has not answered within stallAfter (a hung follower, a
// connection that died without a word) gives up its slot, so the reads
// queued behind it go out on another connection instead of waiting for its
// retries; the pool's size bounds how many such queries can pile up.
type readBatcher struct {
	// exec reads the items with the given distinct ids in one query (with
	// its own retries, each counted in tries as it starts) and reports which
	// follower answered. Ids without a row are absent from the map.
	exec       func(ctx context.Context, ids []int64, tries *atomic.Int32) (map[int64]Item, Follower, error)
	maxBatch   int
	maxActive  int
	stallAfter time.Duration // zero: never
	// Under load, fewer and larger queries: after a batch of at least
	// fillAfter reads (reads arrive faster than queries answer), the next
	// query waits until maxBatch reads are queued (or as many as in the
	// largest recent batch) or its oldest read has been queued fillWait.
	// Each query costs every hop a wakeup, a syscall and a parse whatever
	// its size, so on a machine whose cores the whole stack shares, the CPU
	// this saves serves more requests than the wait costs them. A read that
	// finds the backend idle, or follows small batches, still goes at once.
	// Zero fillWait: never waits.
	fillWait  time.Duration
	fillAfter int
	// fillToPeak: a fill waits for as many reads as the largest recent
	// batch instead of maxBatch (see fill).
	fillToPeak bool
	// onBatch, if set, is called after every batch with what it cost: its
	// size, how long its oldest read waited in the queue, and how long its
	// query took (retries included).
	onBatch func(BatchStats)
	now     func() time.Time // the clock of BatchStats

	mu     sync.Mutex
	queue  []*pendingRead
	active int // drain loops holding a slot, each with at most one query in flight
	// peak is the largest recent batch: a batch at least as large sets
	// it, and every peakDecay smaller ones take one off, so it follows the
	// load down within a hundred batches or so (a tenth of a second under
	// load). peakAge counts the smaller batches since the last step.
	peak, peakAge int
	// fillTo is the queue length a fill wait waits for; zero when none
	// waits. full (buffered, one) is signalled without blocking, under mu,
	// when the queue reaches it, ending the wait early. With more than one
	// drain loop, one waiter wakes and the others wait out fillWait.
	fillTo int
	full   chan struct{}
}

type pendingRead struct {
	ctx    context.Context
	id     int64
	queued time.Time
	done   chan batchResult // buffered: the drain loop never blocks on it
	// tries counts the attempts of the batch this read went out in; nil
	// while it waits in the queue. Guarded by readBatcher.mu.
	tries *atomic.Int32
}

// BatchStats describes one read batch, for metrics.
type BatchStats struct {
	Size  int
	Wait  time.Duration // the oldest read's time in the queue
	Query time.Duration // the query's round trip, retries included
}

type batchResult struct {
	item     Item
	found    bool
	follower Follower
	attempts int
	err      error
}

// read queues one read and waits for its batch's answer or for ctx to end,
// whichever comes first.
func (b *readBatcher) read(ctx context.Context, id int64) batchResult {
	p := &pendingRead{ctx: ctx, id: id, queued: b.now(), done: make(chan batchResult, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if len(b.queue) == b.fillTo {
		signal(b.full)
	}
	start := b.active < b.maxActive
	if start {
		b.active++
	}
	b.mu.Unlock()
	if start {
		go b.drain()
	}
	select {
	case r := <-p.done:
		return r
	case <-ctx.Done():
		// The batch may still run; its answer lands in the buffered channel.
		r := batchResult{err: ctx.Err()}
		b.mu.Lock()
		if p.tries != nil {
			r.attempts = int(p.tries.Load())
		}
		b.mu.Unlock()
		return r
	}
}

// drain sends batches until the queue is empty.
func (b *readBatcher) drain() {
	last := 0 // size of the previous batch
	for {
		if b.fillWait > 0 && last >= b.fillAfter {
			b.fill()
		}
		b.mu.Lock()
		batch := b.take()
		if len(batch) == 0 {
			b.active--
			b.mu.Unlock()
			return
		}
		b.notePeak(len(batch))
		b.mu.Unlock()
		last = len(batch)
		if stalled := b.run(batch); stalled {
			return // its slot went to another drain loop when it stalled
		}
	}
}

// peakDecay is how many smaller batches it takes the largest recent batch
// to fall by one. One made fills end early under steady load, on a dip
// of the batch sizes, and the tail at 64 connections grew by a tenth.
const peakDecay = 4

// notePeak records a batch of n reads in the largest recent batch. b.mu
// must be held.
func (b *readBatcher) notePeak(n int) {
	if n >= b.peak {
		b.peak, b.peakAge = n, 0
		return
	}
	if b.peakAge++; b.peakAge == peakDecay {
		b.peak, b.peakAge = b.peak-1, 0
	}
}

// fill waits until maxBatch reads are queued (with fillToPeak, as many as
// the largest recent batch) or the oldest queued read has waited
// fillWait. The wait counts from that read's arrival, not from the end of
// the query before: reads that queued behind a slow query have already
// waited, and go as soon as they have waited fillWait, so no read waits
// for a query and then for a whole fill on top. The largest recent batch
// is how many reads the clients have put in the queue together lately: a
// few clients (16 waiting on one backend, say) cannot fill 32, so with
// fillToPeak their reads go once they are all back, instead of waiting
// out fillWait for reads that are not coming; under the full stack's
// load, though, fills then end early and the tail grows (docs/performance.md,
// "Reads are batched"), so it is a choice, off by default. With none queued it
// does not wait: the drain loop ends and gives up its slot, so the next
// read finds the backend idle and goes at once.
func (b *readBatcher) fill() {
	b.mu.Lock()
	target := b.maxBatch
	if b.fillToPeak {
		target = min(b.peak, b.maxBatch)
	}
	if len(b.queue) == 0 || len(b.queue) >= target {
		b.mu.Unlock()
		return
	}
	left := b.fillWait - b.now().Sub(b.queue[0].queued)
	if left <= 0 {
		b.mu.Unlock()
		return
	}
	// A signal left from an earlier fill is stale: drop it under mu, so
	// any signal from here on means the queue has reached this target.
	select {
	case <-b.full:
	default:
	}
	b.fillTo = target
	b.mu.Unlock()
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case <-b.full:
	case <-timer.C:
	}
	b.mu.Lock()
	b.fillTo = 0
	b.mu.Unlock()
}

// release gives up the slot of a query that stalled, and starts another
// drain loop if reads are waiting.
func (b *readBatcher) release() {
	b.mu.Lock()
	b.active--
	start := len(b.queue) > 0 && b.active < b.maxActive
	if start {
		b.active++
	}
	b.mu.Unlock()
	if start {
		go b.drain()
	}
}

// take removes up to maxBatch live reads from the head of the queue,
// dropping reads whose caller has already given up. b.mu must be held.
func (b *readBatcher) take() []*pendingRead {
	batch := make([]*pendingRead, 0, min(len(b.queue), b.maxBatch))
	tries := new(atomic.Int32)
	n := 0
	for _, p := range b.queue {
		if len(batch) == cap(batch) {
			break
		}
		n++
		if p.ctx.Err() == nil {
			p.tries = tries
			batch = append(batch, p)
		}
	}
	// Shift the rest down, so the queue's array does not grow without bound.
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// run executes one batch and hands every waiting read its answer. It
// reports whether the batch stalled and released its slot.
func (b *readBatcher) run(batch []*pendingRead) (stalled bool) {
	ids := make([]int64, 0, len(batch))
	seen := make(map[int64]struct{}, len(batch))
	for _, p := range batch {
		if _, dup := seen[p.id]; !dup {
			seen[p.id] = struct{}{}
			ids = append(ids, p.id)
		}
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	if b.stallAfter > 0 {
		t := time.AfterFunc(b.stallAfter, b.release)
		defer func() {
			// Stop fails once the timer has fired: the slot is gone then.
			stalled = !t.Stop()
		}()
	}
	tries := batch[0].tries
	sent := b.now()
	items, from, err := b.exec(ctx, ids, tries)
	if b.onBatch != nil {
		// The queue is FIFO: the first read waited longest.
		b.onBatch(BatchStats{Size: len(batch), Wait: sent.Sub(batch[0].queued), Query: b.now().Sub(sent)})
	}
	for _, p := range batch {
		r := batchResult{follower: from, attempts: int(tries.Load()), err: err}
		if err == nil {
			r.item, r.found = items[p.id]
		}
		p.done <- r
	}
	return false
}

// batchContext bounds a batch by the latest deadline among its reads, so
// no read is cut short by another's earlier deadline; each caller still
// stops waiting at its own. A read without a deadline leaves the batch
// bounded only by the retry policy's per-attempt timeouts.
func batchContext(batch []*pendingRead) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	for _, p := range batch {
		d, ok := p.ctx.Deadline()
		if !ok {
			return context.WithCancel(base)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(base, latest)
}
