package opendsr_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/opendsr"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

const domain = "example-processor.com"

type fixture struct {
	*profiletest.Env
	h       *opendsr.Handler
	signer  *opendsr.Signer
	handler http.Handler
	client  clients.Created
}

func newFixture(t *testing.T, b profiletest.Backend, rules ratelimit.Rules) *fixture {
	t.Helper()
	e := profiletest.OpenEnv(t, b)
	ctx := context.Background()
	signer, created, err := opendsr.LoadSigner(ctx, e.Store, domain, "", "", e.Clock.Now())
	if err != nil || !created {
		t.Fatalf("signer: %v (created %v)", err, created)
	}
	// A second process finds the same key.
	again, created, err := opendsr.LoadSigner(ctx, e.Store, domain, "", "", e.Clock.Now())
	if err != nil || created || !bytes.Equal(again.CertificatePEM(), signer.CertificatePEM()) {
		t.Fatalf("second load: %v (created %v)", err, created)
	}
	h, err := opendsr.New(opendsr.Options{
		Intake: e.Intake, Clients: e.Clients, Store: e.Store, Keyring: e.Keyring, Limiter: e.Limiter,
		Signer: signer, Domain: domain, Rules: rules, Throttle: e.Throttle, Now: e.Clock.Now, Logger: e.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "controller"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{Env: e, h: h, signer: signer, client: c,
		handler: profiletest.Serve(t, e, profiletest.ServeOptions{Profiles: []httpapi.Profile{h}})}
}

func (f *fixture) request(method, path, user, pass string, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Accept", "application/json")
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	r.RemoteAddr = "192.0.2.2:5000"
	return r
}

func (f *fixture) do(t *testing.T, method, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, f.request(method, path, f.client.APIKey, f.client.Secret, body))
	return w
}

func newID(n int) string { return fmt.Sprintf("a7551968-d5d6-44b2-9831-%012d", n) }

func erasure(id, email string, callback string) []byte {
	m := map[string]any{
		"subject_request_id": id, "subject_request_type": "erasure", "regulation": "gdpr",
		"submitted_time":     "2018-10-02T15:00:00Z",
		"subject_identities": []map[string]string{{"identity_type": "email", "identity_value": email, "identity_format": "raw"}},
		"api_version":        "2.0",
	}
	if callback != "" {
		m["status_callback_urls"] = []string{callback}
	}
	b, _ := json.Marshal(m)
	return b
}

var errorShape = regexp.MustCompile(`^\{"error":\{"code":(\d{3}),"message":"((?:[^"\\]|\\.)*)"(,"errors":\[.*\])?\}\}$`)

func openDSRMessage(t *testing.T, body []byte) string {
	t.Helper()
	m := errorShape.FindSubmatch(body)
	if m == nil {
		t.Fatalf("body %s is not in OpenDSR's error shape", body)
	}
	var msg string
	if err := json.Unmarshal([]byte(`"`+string(m[2])+`"`), &msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, msgPart string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d %s, want %d", w.Code, w.Body, status)
	}
	m := errorShape.FindSubmatch(w.Body.Bytes())
	if m == nil || string(m[1]) != fmt.Sprint(status) {
		t.Fatalf("body %s: want code %d", w.Body, status)
	}
	if !strings.Contains(openDSRMessage(t, w.Body.Bytes()), msgPart) {
		t.Fatalf("message of %s does not say %q", w.Body, msgPart)
	}
}

func TestConformance(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		const limit = 5
		f := newFixture(t, b, ratelimit.Rules{Default: ratelimit.Rule{Limit: limit, Window: 10 * time.Minute, Block: 10 * time.Minute}})
		profiletest.Conformance(t, profiletest.Surface{
			Env:     f.Env,
			Handler: f.handler,
			Valid: func(t *testing.T, n int) *http.Request {
				return f.request(http.MethodPost, opendsr.PathRequests, f.client.APIKey, f.client.Secret, erasure(newID(n), fmt.Sprintf("u%d@example.com", n), ""))
			},
			BadAuth: func(t *testing.T, n int) *http.Request {
				return f.request(http.MethodPost, opendsr.PathRequests, f.client.APIKey, "not-the-secret", erasure(newID(n), "x@example.com", ""))
			},
			WithBody: func(t *testing.T, body []byte) *http.Request {
				return f.request(http.MethodPost, opendsr.PathRequests, f.client.APIKey, f.client.Secret, body)
			},
			AuthStatus:    http.StatusUnauthorized,
			InvalidStatus: http.StatusBadRequest,
			Limit:         limit,
			MaxBodyBytes:  opendsr.DefaultMaxBodyBytes,
			UnknownPaths:  []string{opendsr.PathRequests + "/x/y", opendsr.PathDiscovery + "/x", opendsr.PathCertificate + "/x"},
			Message:       openDSRMessage,
		})
	})
}

func specSection(t *testing.T, heading string) (headers, body string) {
	t.Helper()
	doc, err := os.ReadFile("testdata/examples.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), heading)
	if !ok {
		t.Fatalf("no %q in testdata/examples.md", heading)
	}
	_, rest, _ = strings.Cut(rest, "```http\n")
	block, _, _ := strings.Cut(rest, "```")
	headers, body, _ = strings.Cut(block, "\n\n")
	return headers, body
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

func keysOf(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not an object", doc)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// inOrder fails unless got's members appear in the order of want's
// (section example's), all of want's required ones present.
func inOrder(t *testing.T, got, want []string, required ...string) {
	t.Helper()
	i := 0
	for _, k := range want {
		if i < len(got) && got[i] == k {
			i++
		}
	}
	if i != len(got) {
		t.Fatalf("members %v are not in the order of %v", got, want)
	}
	for _, r := range required {
		found := false
		for _, k := range got {
			found = found || k == r
		}
		if !found {
			t.Fatalf("members %v lack %s", got, r)
		}
	}
}

// certificateKey fetches the certificate as a controller does (section
// 8.8: discovery, then processor_certificate) and returns its RSA key.
func certificateKey(t *testing.T, f *fixture) *rsa.PublicKey {
	t.Helper()
	w := f.do(t, http.MethodGet, opendsr.PathDiscovery, nil)
	var d opendsr.Discovery
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.ProcessorCertificate != "https://"+domain+opendsr.PathCertificate {
		t.Fatalf("processor_certificate %q is not on the processor's domain", d.ProcessorCertificate)
	}
	w = f.do(t, http.MethodGet, strings.TrimPrefix(d.ProcessorCertificate, "https://"+domain), nil)
	b, _ := pem.Decode(w.Body.Bytes())
	if b == nil {
		t.Fatalf("certificate %q", w.Body)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname(domain); err != nil {
		t.Fatal(err)
	}
	return cert.PublicKey.(*rsa.PublicKey)
}

// verify checks a base64 signature over body with crypto/rsa directly:
// RSASSA-PKCS1-v1_5 over the SHA-256 digest, as a controller would.
func verify(t *testing.T, pub *rsa.PublicKey, body []byte, sig string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatalf("signature %q is not base64", sig)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
		t.Fatalf("signature does not verify over %s: %v", body, err)
	}
}

func TestSpecExamples(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	pub := certificateKey(t, f)

	t.Run("discovery", func(t *testing.T) {
		_, example := specSection(t, "## 6.4.  Example Discovery Response")
		w := f.do(t, http.MethodGet, opendsr.PathDiscovery, nil)
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if got, want := keysOf(t, w.Body.Bytes()), keysOf(t, []byte(example)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("members %v, want %v", got, want)
		}
		want := fmt.Sprintf(`{"api_version":"2.0","supported_identities":[{"identity_type":"email","identity_format":"raw"},{"identity_type":"controller_customer_id","identity_format":"raw"}],"supported_subject_request_types":["erasure"],"processor_certificate":"https://%s/v2/certificate.pem"}`, domain)
		if w.Body.String() != want {
			t.Fatalf("discovery\n%s\nwant\n%s", w.Body, want)
		}
	})

	var created opendsr.CreateResponse
	t.Run("request example", func(t *testing.T) {
		_, example := specSection(t, "### 7.2.  Example OpenDSR Request")
		// The published example has a trailing comma in its extensions
		// object, which no JSON parser accepts; that comma alone is
		// removed.
		body := strings.Replace(example, `"property_id": "123456",`, `"property_id": "123456"`, 1)
		w := f.do(t, http.MethodPost, opendsr.PathRequests, []byte(body))
		if w.Code != http.StatusCreated {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if w.Header().Get(opendsr.HeaderDomain) != domain {
			t.Fatalf("%s: %q", opendsr.HeaderDomain, w.Header().Get(opendsr.HeaderDomain))
		}
		verify(t, pub, w.Body.Bytes(), w.Header().Get(opendsr.HeaderSignature))
		_, respExample := specSection(t, "### 7.4.  Example OpenDSR Response")
		inOrder(t, keysOf(t, w.Body.Bytes()), append(keysOf(t, []byte(respExample)), "processor_signature"),
			"controller_id", "expected_completion_time", "received_time", "encoded_request", "subject_request_id", "processor_signature")
		if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
			t.Fatal(err)
		}
		enc, _ := base64.StdEncoding.DecodeString(created.EncodedRequest)
		if string(enc) != body || created.SubjectRequestID != "a7551968-d5d6-44b2-9831-815ac9017798" || created.ControllerID != f.client.ID {
			t.Fatalf("answer %+v", created)
		}
		verify(t, pub, []byte(body), created.ProcessorSignature)
		now := f.Clock.Now().UTC()
		if created.ReceivedTime != now.Format(time.RFC3339) || created.ExpectedCompletionTime != now.Add(lethe.DefaultDeadlines[lethe.GDPR]).Format(time.RFC3339) {
			t.Fatalf("times %+v", created)
		}
	})

	t.Run("status example", func(t *testing.T) {
		_, example := specSection(t, "### 8.4.  Example Status Response")
		w := f.do(t, http.MethodGet, opendsr.PathRequests+"/a7551968-d5d6-44b2-9831-815ac9017798", nil)
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		verify(t, pub, w.Body.Bytes(), w.Header().Get(opendsr.HeaderSignature))
		inOrder(t, keysOf(t, w.Body.Bytes()), keysOf(t, []byte(example)), "controller_id", "expected_completion_time", "subject_request_id", "request_status")
		want := fmt.Sprintf(`{"controller_id":%q,"expected_completion_time":%q,"subject_request_id":"a7551968-d5d6-44b2-9831-815ac9017798","request_status":"pending","api_version":"2.0"}`,
			f.client.ID, created.ExpectedCompletionTime)
		if w.Body.String() != want {
			t.Fatalf("status\n%s\nwant\n%s", w.Body, want)
		}
	})

	t.Run("cancellation example", func(t *testing.T) {
		_, example := specSection(t, "### 9.3.  Example OpenDSR Cancellation Response")
		w := f.do(t, http.MethodDelete, opendsr.PathRequests+"/a7551968-d5d6-44b2-9831-815ac9017798", nil)
		if w.Code != http.StatusAccepted {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		verify(t, pub, w.Body.Bytes(), w.Header().Get(opendsr.HeaderSignature))
		if got, want := keysOf(t, w.Body.Bytes()), keysOf(t, []byte(example)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("members %v, want %v", got, want)
		}
		want := fmt.Sprintf(`{"controller_id":%q,"subject_request_id":"a7551968-d5d6-44b2-9831-815ac9017798","received_time":%q,"api_version":"2.0"}`,
			f.client.ID, f.Clock.Now().UTC().Format(time.RFC3339))
		if w.Body.String() != want {
			t.Fatalf("cancel\n%s\nwant\n%s", w.Body, want)
		}
		if w := f.do(t, http.MethodGet, opendsr.PathRequests+"/a7551968-d5d6-44b2-9831-815ac9017798", nil); !strings.Contains(w.Body.String(), `"request_status":"cancelled"`) {
			t.Fatalf("after cancel: %s", w.Body)
		}
	})

	t.Run("error example", func(t *testing.T) {
		_, example := specSection(t, "## 7.7.  Example OpenDSR Error Response")
		var m map[string]any
		_ = json.Unmarshal(erasure(newID(7), "e@example.com", ""), &m)
		delete(m, "subject_request_id")
		body, _ := json.Marshal(m)
		before := profiletest.CountRequests(t, f.Store)
		w := f.do(t, http.MethodPost, opendsr.PathRequests, body)
		if w.Code != http.StatusBadRequest || w.Body.String() != compact(t, example) {
			t.Fatalf("%d %s\nwant 400 %s", w.Code, w.Body, compact(t, example))
		}
		if profiletest.CountRequests(t, f.Store) != before {
			t.Fatal("a refused request was stored")
		}
	})

	t.Run("callback example", func(t *testing.T) {
		_, example := specSection(t, "### 8.7. Callback Request Example")
		r := &lethe.Request{ID: "x", ClientID: f.client.ID, ExternalID: "a7551968-d5d6-44b2-9831-815ac9017798",
			Status: lethe.StatusCompleted, DueAt: time.Date(2018, 11, 1, 15, 0, 1, 0, time.UTC)}
		stored, err := f.h.Format().Render(pipeline.StatusChange{Request: r})
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		sent, err := f.h.Format().Prepare(stored, "https://examplecontroller.com/opendsr/callbacks", h)
		if err != nil {
			t.Fatal(err)
		}
		// The example's body with this request's status and no results.
		var ex map[string]any
		_ = json.Unmarshal([]byte(example), &ex)
		want := fmt.Sprintf(`{"controller_id":%q,"expected_completion_time":%q,"status_callback_url":%q,"subject_request_id":%q,"request_status":"completed"}`,
			f.client.ID, ex["expected_completion_time"], ex["status_callback_url"], ex["subject_request_id"])
		if string(sent) != want {
			t.Fatalf("callback\n%s\nwant\n%s", sent, want)
		}
		inOrder(t, keysOf(t, sent), keysOf(t, []byte(example)), "controller_id", "expected_completion_time", "status_callback_url", "subject_request_id", "request_status")
		if bytes.Contains(stored, []byte("examplecontroller.com")) {
			t.Fatal("the stored body holds the callback URL, which is sealed apart")
		}
		if h.Get(opendsr.HeaderDomain) != domain {
			t.Fatalf("domain header %q", h.Get(opendsr.HeaderDomain))
		}
		verify(t, pub, sent, h.Get(opendsr.HeaderSignature))
		// A changed byte does not verify.
		sum := sha256.Sum256(append([]byte(nil), bytes.Replace(sent, []byte("completed"), []byte("cancelled"), 1)...))
		raw, _ := base64.StdEncoding.DecodeString(h.Get(opendsr.HeaderSignature))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) == nil {
			t.Fatal("the signature verifies over an altered body")
		}
	})
}

func TestFlows(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		ctx := context.Background()
		other, err := f.Clients.Create(ctx, clients.CreateParams{Name: "other-controller"})
		if err != nil {
			t.Fatal(err)
		}
		post := func(t *testing.T, body []byte) *httptest.ResponseRecorder {
			t.Helper()
			return f.do(t, http.MethodPost, opendsr.PathRequests, body)
		}
		status := func(t *testing.T, id string) string {
			t.Helper()
			w := f.do(t, http.MethodGet, opendsr.PathRequests+"/"+id, nil)
			var s opendsr.StatusResponse
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &s) != nil {
				t.Fatalf("status: %d %s", w.Code, w.Body)
			}
			return s.RequestStatus
		}
		move := func(t *testing.T, id string, to lethe.Status) {
			t.Helper()
			req, err := f.Store.FindRequestByIdempotencyKey(ctx, f.client.ID, idem(f, id))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := f.Store.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: req.ID, To: to, ToStage: lethe.StageErase, At: f.Clock.Now()}); err != nil || !ok {
				t.Fatal(ok, err)
			}
		}

		t.Run("retry is the same request", func(t *testing.T) {
			body := erasure(newID(1), "one@example.com", "https://controller.example.com/cb")
			first, again := post(t, body), post(t, body)
			if first.Code != http.StatusCreated || again.Code != http.StatusCreated {
				t.Fatalf("%d %s / %d %s", first.Code, first.Body, again.Code, again.Body)
			}
			var a, b opendsr.CreateResponse
			_ = json.Unmarshal(first.Body.Bytes(), &a)
			_ = json.Unmarshal(again.Body.Bytes(), &b)
			if a.ReceivedTime != b.ReceivedTime || a.SubjectRequestID != b.SubjectRequestID {
				t.Fatalf("a retry answered %+v after %+v", b, a)
			}
			req, err := f.Store.FindRequestByIdempotencyKey(ctx, f.client.ID, idem(f, newID(1)))
			if err != nil || req.CallbackFormat != opendsr.FormatName || req.CallbackURL != "https://controller.example.com/cb" {
				t.Fatalf("stored %+v (%v)", req, err)
			}
			// The same id for another subject is refused.
			wantError(t, post(t, erasure(newID(1), "two@example.com", "")), http.StatusBadRequest, "already used")
			// Another request for the open subject points at the first.
			wantError(t, post(t, erasure(newID(2), "one@example.com", "")), http.StatusBadRequest, "already open: subject_request_id "+newID(1))
		})

		t.Run("cancel only while pending", func(t *testing.T) {
			if w := post(t, erasure(newID(3), "three@example.com", "")); w.Code != http.StatusCreated {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			move(t, newID(3), lethe.StatusRunning)
			if s := status(t, newID(3)); s != opendsr.StatusInProgress {
				t.Fatalf("running is %s", s)
			}
			wantError(t, f.do(t, http.MethodDelete, opendsr.PathRequests+"/"+newID(3), nil), http.StatusBadRequest, "the request is in_progress; only a pending request can be cancelled")
			move(t, newID(3), lethe.StatusCompleted)
			if s := status(t, newID(3)); s != opendsr.StatusCompleted {
				t.Fatalf("completed is %s", s)
			}
			wantError(t, f.do(t, http.MethodDelete, opendsr.PathRequests+"/"+newID(3), nil), http.StatusBadRequest, "the request is completed")
		})

		t.Run("another controller sees nothing", func(t *testing.T) {
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, f.request(http.MethodGet, opendsr.PathRequests+"/"+newID(1), other.APIKey, other.Secret, nil))
			wantError(t, w, http.StatusNotFound, "no request")
			w = httptest.NewRecorder()
			f.handler.ServeHTTP(w, f.request(http.MethodDelete, opendsr.PathRequests+"/"+newID(1), other.APIKey, other.Secret, nil))
			wantError(t, w, http.StatusNotFound, "no request")
		})

		t.Run("refusals", func(t *testing.T) {
			mod := func(change func(m map[string]any)) []byte {
				var m map[string]any
				_ = json.Unmarshal(erasure(newID(9), "nine@example.com", ""), &m)
				change(m)
				b, _ := json.Marshal(m)
				return b
			}
			for _, c := range []struct {
				name string
				body []byte
				msg  string
			}{
				{"access", mod(func(m map[string]any) { m["subject_request_type"] = "access" }), "subject_request_type access is not supported"},
				{"portability", mod(func(m map[string]any) { m["subject_request_type"] = "portability" }), "subject_request_type portability is not supported"},
				{"unknown type", mod(func(m map[string]any) { m["subject_request_type"] = "rectify" }), "must be erasure, access or portability"},
				{"not a uuid v4", mod(func(m map[string]any) { m["subject_request_id"] = "A7551968-D5D6-44B2-9831-815AC9017798" }), "lowercase UUID v4"},
				{"regulation", mod(func(m map[string]any) { m["regulation"] = "lgpd" }), "regulation must be gdpr or ccpa"},
				{"submitted_time", mod(func(m map[string]any) { m["submitted_time"] = "02/10/2018" }), "submitted_time must be an RFC 3339 date"},
				{"api version", mod(func(m map[string]any) { m["api_version"] = "1.0" }), "api_version must be 2.x"},
				{"two callbacks", mod(func(m map[string]any) {
					m["status_callback_urls"] = []string{"https://a.example.com/", "https://b.example.com/"}
				}), "at most one URL"},
				{"hashed identity", mod(func(m map[string]any) {
					m["subject_identities"] = []map[string]string{{"identity_type": "email", "identity_value": "ab12", "identity_format": "sha256"}}
				}), "email in format sha256 is not supported"},
				{"advertising id", mod(func(m map[string]any) {
					m["subject_identities"] = []map[string]string{{"identity_type": "ios_advertising_id", "identity_value": "x", "identity_format": "raw"}}
				}), "ios_advertising_id in format raw is not supported"},
				{"no identities", mod(func(m map[string]any) { delete(m, "subject_identities") }), "subject_identities field is required"},
				{"unknown member", mod(func(m map[string]any) { m["subject"] = "nine@example.com" }), "member this endpoint does not accept"},
			} {
				t.Run(c.name, func(t *testing.T) {
					before := profiletest.CountRequests(t, f.Store)
					w := post(t, c.body)
					wantError(t, w, http.StatusBadRequest, c.msg)
					if strings.Contains(w.Body.String(), "nine@") {
						t.Fatalf("%s echoes the identity", w.Body)
					}
					if profiletest.CountRequests(t, f.Store) != before {
						t.Fatal("a refused request was stored")
					}
				})
			}
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, f.request(http.MethodPost, opendsr.PathRequests, "", "", erasure(newID(9), "nine@example.com", "")))
			wantError(t, w, http.StatusUnauthorized, "invalid credentials")
			if w.Header().Get("WWW-Authenticate") != `Basic realm="opendsr"` {
				t.Fatalf("challenge %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	})
}

func idem(f *fixture, id string) string {
	return intakeKey(f, id)
}

func intakeKey(f *fixture, id string) string {
	return intake.IdempotencyKey(f.Keyring, f.client.ID, id)
}

// TestStates: every lethe state maps to the OpenDSR status the table
// says, operator control's held and denied included; an extension's
// callback carries the new expected_completion_time.
func TestStates(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	due := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for status, want := range map[lethe.Status]string{
		lethe.StatusReceived: "pending", lethe.Status("held"): "pending", lethe.StatusRunning: "in_progress",
		lethe.StatusFailed: "in_progress", lethe.StatusCompleted: "completed", lethe.StatusCanceled: "cancelled",
		lethe.Status("denied"): "cancelled", lethe.Status("some_future_state"): "in_progress",
	} {
		b, err := f.h.Format().Render(pipeline.StatusChange{
			Request:   &lethe.Request{ID: "r", ClientID: "c", ExternalID: newID(1), Status: status, DueAt: due},
			Extension: &pipeline.ExtensionChange{PreviousDueAt: due.Add(-time.Hour), Reason: "r"},
		})
		if err != nil {
			t.Fatal(err)
		}
		wantBody := fmt.Sprintf(`{"controller_id":"c","expected_completion_time":"2026-03-01T00:00:00Z","status_callback_url":"","subject_request_id":%q,"request_status":%q}`, newID(1), want)
		if string(b) != wantBody {
			t.Errorf("%s: %s, want %s", status, b, wantBody)
		}
	}
}
