package telegram_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// BenchmarkBalanceReplyLatency sends /balance from 50 members at 200 updates
// per second for 3 s through the fake Telegram (long polling) and reports the
// time from an update being offered to the bot until its reply arrives
// (target: p99 ≤ 25 ms). Run it with -benchtime 1x.
func BenchmarkBalanceReplyLatency(b *testing.B) {
	for range b.N {
		p50, p99, mean := replyLatency(b, 200, 3*time.Second)
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(mean.Microseconds())/1000, "mean_ms")
	}
}

func replyLatency(b *testing.B, rate int, d time.Duration) (p50, p99, mean time.Duration) {
	e := newEnv(b)
	const members = 50
	for i := range members {
		e.award(b, fmt.Sprint("telegram:", 1000+i), int64(100+i))
	}
	e.start(b, "")
	var mu sync.Mutex
	offered := map[int]time.Time{} // user message id → when it was offered
	var lat []time.Duration
	done := make(chan struct{})
	go func() { // timestamps replies as they land in the fake
		defer close(done)
		seen := 0
		want := int(d.Seconds()) * rate
		for deadline := time.Now().Add(d + 10*time.Second); time.Now().Before(deadline) && seen < want; {
			sent := e.fake.Sent()
			now := time.Now()
			mu.Lock()
			for _, s := range sent[seen:] {
				if t0, ok := offered[s.ReplyTo]; ok {
					lat = append(lat, now.Sub(t0))
				}
			}
			mu.Unlock()
			seen = len(sent)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range int(d.Seconds()) * rate {
		<-tick.C
		u := faketelegram.User{ID: int64(1000 + i%members), FirstName: "M", LanguageCode: "en"}
		// Held across the send, so the reply cannot be looked up before it is known.
		mu.Lock()
		t0 := time.Now()
		id := e.fake.SendText(u, faketelegram.PrivateChat(u), "/balance")
		offered[e.fake.Update(id).Message.ID] = t0
		mu.Unlock()
	}
	<-done
	if len(lat) < int(d.Seconds())*rate {
		b.Fatalf("%d replies for %d updates", len(lat), int(d.Seconds())*rate)
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	return lat[len(lat)/2], lat[len(lat)*99/100], sum / time.Duration(len(lat))
}
