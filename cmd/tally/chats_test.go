package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/fakediscord"
	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// chatEnv starts both fake platforms and a serve process configured for them
// (Telegram long polling, Discord gateway plus HTTP interactions).
func chatEnv(t testing.TB) (*process, string, *faketelegram.Server, *fakediscord.Server, fakediscord.SignFunc) {
	tg := faketelegram.New(t)
	dc := fakediscord.New(t)
	pub, sign := fakediscord.NewSigner()
	addr := freeAddr(t)
	env := []string{"DATABASE_URL=" + tallytest.DatabaseURL(t), "REDIS_URL=" + tallytest.Redis(t), "TALLY_HTTP_ADDR=" + addr,
		"TELEGRAM_BOT_TOKEN=" + tg.Token(), "TELEGRAM_API_URL=" + tg.URL(),
		"DISCORD_BOT_TOKEN=" + dc.BotToken(), "DISCORD_APP_ID=" + dc.AppID(), "DISCORD_PUBLIC_KEY=" + pub,
		"DISCORD_API_URL=" + dc.URL(), "DISCORD_GATEWAY_URL=" + dc.GatewayURL()}
	p := start(t, env, "serve")
	waitHealthy(t, addr, p)
	dc.WaitReady(t, 10*time.Second)
	return p, addr, tg, dc, sign
}

// TestServe_BothChatPlatforms: serve answers Telegram and Discord (gateway and
// HTTP interactions) and stops on SIGTERM.
func TestServe_BothChatPlatforms(t *testing.T) {
	t.Parallel()
	p, addr, tg, dc, sign := chatEnv(t)
	if len(tg.Commands("de")) == 0 || len(dc.Commands()) == 0 {
		t.Fatalf("commands not registered: telegram %d, discord %d", len(tg.Commands("de")), len(dc.Commands()))
	}
	u := faketelegram.User{ID: 9, FirstName: "Tess", LanguageCode: "fr"}
	tg.SendText(u, faketelegram.PrivateChat(u), "/balance")
	if s := tg.WaitSent(t, 1, 10*time.Second); !strings.Contains(s[0].Text, "point") {
		t.Fatalf("telegram /balance: %+v", s[0])
	}
	inv := fakediscord.Invoker{UserID: "77", Username: "dee", GuildID: "1", ChannelID: "2", Locale: "ko"}
	i := dc.SlashCommand(inv, "help")
	dc.DispatchInteraction(i)
	if r := dc.WaitInteractionResponse(t, i.ID, 10*time.Second); !strings.Contains(r.Content, "/balance") || !r.Ephemeral() {
		t.Fatalf("discord gateway /help: %+v", r)
	}
	resp := dc.PostInteraction(t, "http://"+addr+"/discord/interactions", sign, dc.SlashCommand(inv, "balance"))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("discord HTTP interaction: %d", resp.StatusCode)
	}
	resp = dc.PostInteraction(t, "http://"+addr+"/discord/interactions", fakediscord.ForgedSigner(), dc.SlashCommand(inv, "balance"))
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("forged interaction: %d", resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, out := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	} else if strings.Contains(out, tg.Token()) || strings.Contains(out, dc.BotToken()) {
		t.Fatalf("a token reached the log:\n%s", out)
	}
}

// BenchmarkServeIdleRSS_BothAdapters reports the resident memory of serve
// with Telegram and Discord connected and idle (target ≤ 64 MB). Run it with
// -benchtime 1x.
func BenchmarkServeIdleRSS_BothAdapters(b *testing.B) {
	for range b.N {
		p, _, _, _, _ := chatEnv(b)
		time.Sleep(3 * time.Second)
		status, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.Atoi(f[1])
				b.ReportMetric(float64(kb)/1024, "rss_MB")
			}
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait(b, 10*time.Second)
	}
}
