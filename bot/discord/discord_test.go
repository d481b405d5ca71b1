package discord_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/discord"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/fakediscord"
)

func newRouter(t *testing.T) (*bot.Router, *ledger.Service) {
	t.Helper()
	l := ledger.New(tallytest.DB(t), tally.SystemClock{})
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	return bot.NewRouter(l, cat, program.Example(), slog.Default()), l
}

func award(t *testing.T, l *ledger.Service, member string, points int64) {
	t.Helper()
	ref, _ := ledger.ParseMemberRef(member)
	if _, err := l.Award(context.Background(), ledger.Award{Member: ref, Points: points, Key: member + "-seed"}); err != nil {
		t.Fatal(err)
	}
}

// httpAdapter serves the adapter's interactions endpoint on a test server
// with a database of its own.
func httpAdapter(t *testing.T) (*fakediscord.Server, string, fakediscord.SignFunc, *ledger.Service) {
	t.Helper()
	fd := fakediscord.New(t)
	pub, sign := fakediscord.NewSigner()
	router, l := newRouter(t)
	return fd, serveInteractions(t, pub, router, tallytest.DB(t)), sign, l
}

// serveInteractions starts an adapter for HTTP interactions and returns its URL.
func serveInteractions(t *testing.T, pub string, router *bot.Router, db *pgxpool.Pool) string {
	t.Helper()
	a, err := discord.New(discord.Config{PublicKey: pub, Router: router, Log: slog.Default(), DB: db})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.InteractionsHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// postAt sends raw to url signed at timestamp ts and returns the status.
func postAt(t *testing.T, url string, sign fakediscord.SignFunc, raw []byte, ts string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(raw))
	req.Header.Set("X-Signature-Ed25519", sign(raw, ts))
	req.Header.Set("X-Signature-Timestamp", ts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHTTPInteractions_SignedCommandsInGuildAndDM(t *testing.T) {
	t.Parallel()
	fd, url, sign, l := httpAdapter(t)
	award(t, l, "discord:80351110224678912", 1234)

	guild := fakediscord.Invoker{UserID: "80351110224678912", Username: "ada", GuildID: "1", ChannelID: "2", Locale: "de"}
	resp := fd.PostInteraction(t, url, sign, fd.SlashCommand(guild, "balance"))
	if text := body(t, resp); resp.StatusCode != 200 || !strings.Contains(text, "1.234") || !strings.Contains(text, `"flags":64`) || !strings.Contains(text, `"type":4`) {
		t.Fatalf("guild /balance in German: %d %s", resp.StatusCode, text)
	}
	dm := fakediscord.Invoker{UserID: "80351110224678912", Username: "ada", ChannelID: "3", Locale: "en-US"}
	resp = fd.PostInteraction(t, url, sign, fd.SlashCommand(dm, "lang", fakediscord.StringOption("code", "fr")))
	if text := body(t, resp); resp.StatusCode != 200 || !strings.Contains(text, "français") {
		t.Fatalf("DM /lang fr: %d %s", resp.StatusCode, text)
	}
	resp = fd.PostInteraction(t, url, sign, fd.SlashCommand(dm, "balance"))
	if text := body(t, resp); !strings.Contains(text, "1\u202f234") && !strings.Contains(text, "1\u00a0234") && !strings.Contains(text, "1 234") {
		t.Fatalf("/balance after /lang fr: %s", text)
	}
}

func TestHTTPInteractions_PingForgedAndMalformed(t *testing.T) {
	t.Parallel()
	fd, url, sign, _ := httpAdapter(t)
	resp := fakediscord.PostSigned(t, url, sign, []byte(`{"type":1,"id":"1","application_id":"`+fd.AppID()+`","token":"x"}`))
	if text := body(t, resp); resp.StatusCode != 200 || strings.TrimSpace(text) != `{"type":1}` {
		t.Fatalf("PING: %d %q", resp.StatusCode, text)
	}
	inv := fakediscord.Invoker{UserID: "5", Username: "x", ChannelID: "3"}
	for name, s := range map[string]fakediscord.SignFunc{"forged": fakediscord.ForgedSigner(), "unsigned": nil} {
		resp := fd.PostInteraction(t, url, s, fd.SlashCommand(inv, "balance"))
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", name, resp.StatusCode)
		}
		resp.Body.Close()
	}
	resp = fakediscord.PostSigned(t, url, sign, []byte(`{not json`))
	if resp.StatusCode != 400 {
		t.Fatalf("malformed body: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestGateway_RegistersLocalizedCommandsAndAnswers(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	router, l := newRouter(t)
	award(t, l, "discord:42", 7)
	a, err := discord.New(discord.Config{Token: fd.BotToken(), AppID: fd.AppID(), APIURL: fd.URL(), GatewayURL: fd.GatewayURL(),
		Router: router, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	fd.WaitReady(t, 5*time.Second)

	cmds := fd.Commands()
	names := map[string]*discordgo.ApplicationCommand{}
	for _, c := range cmds {
		names[c.Name] = c
	}
	for _, want := range []string{"help", "balance", "history", "lang", "notify", "link"} {
		if names[want] == nil {
			t.Fatalf("command %s not registered: %v", want, cmds)
		}
	}
	if n := names["balance"].NameLocalizations; n == nil || (*n)[discordgo.German] != "guthaben" || (*n)[discordgo.Japanese] != "残高" {
		t.Fatalf("balance has no German/Japanese names: %v", names["balance"].NameLocalizations)
	}
	if d := names["balance"].DescriptionLocalizations; d == nil || (*d)[discordgo.German] == "" || (*d)[discordgo.Japanese] == "" {
		t.Fatalf("balance has no German/Japanese descriptions: %v", names["balance"].DescriptionLocalizations)
	}

	i := fd.SlashCommand(fakediscord.Invoker{UserID: "42", Username: "bo", GuildID: "1", ChannelID: "9", Locale: "ja"}, "balance")
	fd.DispatchInteraction(i)
	r := fd.WaitInteractionResponse(t, i.ID, 5*time.Second)
	if r.Type != 4 || !r.Ephemeral() || !strings.Contains(r.Content, "7") {
		t.Fatalf("gateway /balance: %+v", r)
	}
}

// TestHTTPInteractions_EveryCommand runs each command once in Spanish and
// checks the reply is Spanish, private, and never an internal error.
func TestHTTPInteractions_EveryCommand(t *testing.T) {
	t.Parallel()
	fd, url, sign, l := httpAdapter(t)
	award(t, l, "discord:77", 2500)
	inv := fakediscord.Invoker{UserID: "77", Username: "eva", GuildID: "1", ChannelID: "2", Locale: "es-ES"}
	cases := []struct {
		name string
		opts []*discordgo.ApplicationCommandInteractionDataOption
		want string
	}{
		{"help", nil, "/balance"},
		{"balance", nil, "2.500"},
		{"history", nil, "+2.500"},
		{"notify", []*discordgo.ApplicationCommandInteractionDataOption{fakediscord.StringOption("state", "off")}, "desactivad"},
		{"notify", []*discordgo.ApplicationCommandInteractionDataOption{fakediscord.StringOption("state", "on")}, "activad"},
		{"link", nil, "/link "},
		{"link", []*discordgo.ApplicationCommandInteractionDataOption{fakediscord.StringOption("code", "ZZZZ2222")}, "/link"},
		{"lang", nil, "pt-BR"},
		{"nonsense", nil, "/nonsense"},
	}
	for _, c := range cases {
		resp := fd.PostInteraction(t, url, sign, fd.SlashCommand(inv, c.name, c.opts...))
		text := body(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(text, c.want) || !strings.Contains(text, `"flags":64`) {
			t.Errorf("/%s: %d %s (want %q)", c.name, resp.StatusCode, text, c.want)
		}
		if strings.Contains(text, "error_") || strings.Contains(text, "Something went wrong") {
			t.Errorf("/%s: %s", c.name, text)
		}
	}
}

// BenchmarkSignedInteraction measures the round trip of a signed /balance
// interaction through the HTTP endpoint (target: mean ≤ 5 ms).
func BenchmarkSignedInteraction(b *testing.B) {
	fd := fakediscord.New(b, fakediscord.WithInteractionDeadline(0))
	pub, sign := fakediscord.NewSigner()
	l := ledger.New(tallytest.DB(b), tally.SystemClock{})
	cat, err := locales.Load()
	if err != nil {
		b.Fatal(err)
	}
	a, err := discord.New(discord.Config{PublicKey: pub, Router: bot.NewRouter(l, cat, program.Example(), slog.Default()), Log: slog.Default(), DB: tallytest.DB(b)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(a.InteractionsHandler())
	defer srv.Close()
	inv := fakediscord.Invoker{UserID: "42", Username: "bo", GuildID: "1", ChannelID: "9", Locale: "en-US"}
	b.ResetTimer()
	for range b.N {
		resp := fd.PostInteraction(b, srv.URL, sign, fd.SlashCommand(inv, "balance"))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// TestHTTPInteractions_ReplaysAndStaleTimestampsRefused: a captured signed
// request sent again, or one signed long ago, runs nothing.
func TestHTTPInteractions_ReplaysAndStaleTimestampsRefused(t *testing.T) {
	t.Parallel()
	fd, url, sign, _ := httpAdapter(t)
	inv := fakediscord.Invoker{UserID: "31", Username: "cy", ChannelID: "3", Locale: "en-US"}
	raw, _ := json.Marshal(fd.SlashCommand(inv, "link"))
	now := strconv.FormatInt(time.Now().Unix(), 10)
	if code := postAt(t, url, sign, raw, now); code != 200 {
		t.Fatalf("first delivery: %d", code)
	}
	if code := postAt(t, url, sign, raw, now); code != 401 {
		t.Fatalf("replayed request: %d, want 401", code)
	}
	raw, _ = json.Marshal(fd.SlashCommand(inv, "balance"))
	if code := postAt(t, url, sign, raw, strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)); code != 401 {
		t.Fatalf("request signed an hour ago: %d, want 401", code)
	}
}

// TestHTTPInteractions_ReplayToAnotherInstanceRefused: two instances share the
// database; a request answered by one is refused by the other.
func TestHTTPInteractions_ReplayToAnotherInstanceRefused(t *testing.T) {
	t.Parallel()
	db := tallytest.DB(t)
	fd := fakediscord.New(t)
	pub, sign := fakediscord.NewSigner()
	router, _ := newRouter(t)
	urls := []string{serveInteractions(t, pub, router, db), serveInteractions(t, pub, router, db)}
	raw, _ := json.Marshal(fd.SlashCommand(fakediscord.Invoker{UserID: "31", Username: "cy", ChannelID: "3"}, "link"))
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for n, want := range []int{200, 401} {
		if code := postAt(t, urls[n], sign, raw, now); code != want {
			t.Fatalf("instance %d: %d, want %d", n+1, code, want)
		}
	}
}
