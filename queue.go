package wspub

import "sync"

// queue is a connection's FIFO of encoded messages, bounded by the caller. The frames are
// shared between subscribers and never modified. It is a list of fixed-size segments
// taken from and returned to a pool shared by the hub's connections: an idle connection
// holds no segment, and a busy one allocates nothing in the steady state.
type queue struct {
	head, tail *segment
	hi, ti     int // next slot to pop in head, next slot to fill in tail
	n          int
	bytes      int
}

// segmentSlots is the number of messages one segment holds (768 bytes of slice headers).
const segmentSlots = 32

type segment struct {
	msgs [segmentSlots][]byte
	next *segment
}

func (q *queue) push(b []byte, pool *sync.Pool) {
	if q.tail == nil || q.ti == segmentSlots {
		s, _ := pool.Get().(*segment)
		if s == nil {
			s = new(segment)
		}
		if q.tail == nil {
			q.head, q.hi = s, 0
		} else {
			q.tail.next = s
		}
		q.tail, q.ti = s, 0
	}
	q.tail.msgs[q.ti] = b
	q.ti++
	q.n++
	q.bytes += len(b)
}

// pop removes the oldest message; the queue must not be empty.
func (q *queue) pop(pool *sync.Pool) []byte {
	b := q.head.msgs[q.hi]
	q.head.msgs[q.hi] = nil
	q.hi++
	q.n--
	q.bytes -= len(b)
	switch {
	case q.n == 0: // head == tail: give the last segment back
		pool.Put(q.head)
		*q = queue{}
	case q.hi == segmentSlots:
		s := q.head
		q.head, q.hi = s.next, 0
		s.next = nil
		pool.Put(s)
	}
	return b
}

// reset empties the queue and returns how many messages it held.
func (q *queue) reset(pool *sync.Pool) int {
	n := q.n
	for q.n > 0 {
		q.pop(pool)
	}
	return n
}
