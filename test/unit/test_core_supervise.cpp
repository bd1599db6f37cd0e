#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/core/supervise.hpp"

#include <doctest/doctest.h>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace cs;
using namespace cs::core;
using namespace std::chrono_literals;
using Clock = supervise::Clock;

namespace {

const Clock::time_point t0{std::chrono::hours(500)};

// A scripted Vault: database credentials with a TTL and a max_ttl, a KV v2 secret with a
// version, and a switch that makes every request fail as if Vault were sealed.
struct FakeVault : VaultOps {
  std::int64_t ttl = 30;
  std::int64_t max_ttl = 45;
  bool down = false;
  bool refuse_renewal = false;
  std::optional<LeaseAnswer> renewal_answer; // answers every renewal when set (a hostile Vault)
  int issued = 0;
  std::uint64_t kv_version = 1;
  std::map<std::string, std::int64_t> age; // lease id -> seconds granted so far
  std::vector<std::string> log;
  Clock::time_point* now = nullptr;
  std::map<std::string, Clock::time_point> issued_at;

  void fail_if_down(const std::string& what) {
    log.push_back(what);
    if (down) {
      throw Error(ExitCode::unavailable, "Vault is sealed (503) for {}", what);
    }
  }
  vault::Fetched read(const vault::ReadSpec& spec) override {
    fail_if_down("read " + spec.path);
    vault::Fetched f;
    if (spec.path == "database/creds/app") {
      ++issued;
      f.data =
          util::SecretJson::parse("{\"username\":\"v-app-" + std::to_string(issued) +
                                  "\",\"password\":\"pw-canary-" + std::to_string(issued) + "\"}");
      f.lease_id = "database/creds/app/lease" + std::to_string(issued);
      f.lease_duration = ttl;
      f.renewable = true;
      issued_at[f.lease_id] = *now;
    } else {
      f.kv2 = true;
      f.version = kv_version;
      f.data =
          util::SecretJson::parse("{\"token\":\"kv-canary-v" + std::to_string(kv_version) + "\"}");
    }
    return f;
  }
  std::uint64_t kv2_current_version(const std::string& path) override {
    fail_if_down("metadata " + path);
    return kv_version;
  }
  LeaseAnswer renew_lease(const std::string& id, std::int64_t increment) override {
    fail_if_down("renew " + id);
    if (refuse_renewal) {
      throw Error(ExitCode::invalid_input, "lease is not renewable (400)");
    }
    if (renewal_answer) {
      return *renewal_answer;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(*now - issued_at[id]);
    const std::int64_t left = max_ttl - elapsed.count();
    return LeaseAnswer{std::min(increment, left), true};
  }
  LeaseAnswer lookup_token() override {
    fail_if_down("lookup-self");
    return LeaseAnswer{3600, true};
  }
  LeaseAnswer renew_token(std::int64_t increment) override {
    fail_if_down("renew-self");
    return LeaseAnswer{increment, true};
  }
  void revoke_lease(const std::string& id) override { fail_if_down("revoke " + id); }
  void revoke_token() override { fail_if_down("revoke-self"); }
};

struct FakeChild : ChildEffects {
  std::vector<int> signals;
  std::vector<std::vector<std::size_t>> rewrites;
  std::vector<std::string> rendered; // the first rewritten file's content each time
  int starts = 0;
  std::vector<std::string> redacted;
  void rewrite_files(const std::vector<std::size_t>& files, const Resolver& r) override {
    rewrites.push_back(files);
    rendered.emplace_back(r.render_file(plan->files[files.front()]).reveal());
  }
  void signal(int signo) override { signals.push_back(signo); }
  void start(const Resolver&) override { ++starts; }
  void redact(const std::string& name, const util::Secret& value) override {
    redacted.push_back(name + "=" + std::string(value.reveal()));
  }
  const Plan* plan = nullptr;
};

const char* k_manifest = R"(version: 1
secrets:
  db:
    path: database/creds/app
    engine: generic
  conf:
    path: secret/data/conf
    key: token
files:
  - path: db.json
    secret: db
    format: json
  - path: conf
    secret: conf
)";

struct World {
  std::shared_ptr<const Plan> plan;
  FakeVault vault;
  FakeChild child;
  Clock::time_point now = t0;
  std::unique_ptr<Session> session;

  explicit World(SuperviseSettings settings = {}) {
    PlanInput in;
    in.manifest = std::make_shared<const Manifest>(parse_manifest(k_manifest, "m.yml"));
    in.argv = {"app"};
    plan = std::make_shared<const Plan>(build_plan(in));
    vault.now = &now;
    child.plan = plan.get();
    std::vector<vault::Fetched> fetched;
    for (const auto& f : plan->fetches) {
      fetched.push_back(vault.read(f.read));
    }
    vault.log.clear();
    session = std::make_unique<Session>(plan, std::move(fetched), vault, child, settings, now);
    session->begin(now);
  }
  // Runs the session's timer at every wakeup up to `until`.
  void advance(Clock::time_point until) {
    for (int guard = 0; guard < 10000; ++guard) {
      const auto next = session->next_wakeup();
      if (next > until) {
        break;
      }
      now = std::max(now, next);
      session->on_timer(now);
    }
    now = until;
  }
  int count(const std::string& prefix) const {
    int n = 0;
    for (const auto& l : vault.log) {
      n += l.rfind(prefix, 0) == 0 ? 1 : 0;
    }
    return n;
  }
};

} // namespace

TEST_SUITE_BEGIN("core::Session");

TEST_CASE("every delivered value is registered for redaction under its secret's name") {
  World w;
  CHECK(std::find(w.child.redacted.begin(), w.child.redacted.end(), "db=pw-canary-1") !=
        w.child.redacted.end());
  CHECK(std::find(w.child.redacted.begin(), w.child.redacted.end(), "conf=kv-canary-v1") !=
        w.child.redacted.end());
}

TEST_CASE("a renewable lease is renewed at two thirds of its TTL") {
  World w;
  CHECK(w.session->next_wakeup() == t0 + 20s);
  w.advance(t0 + 19s);
  CHECK(w.count("renew database") == 0);
  w.advance(t0 + 20s);
  CHECK(w.count("renew database/creds/app/lease1") == 1);
  CHECK(w.session->stats().renewals == 1);
  CHECK(w.child.signals.empty());
}

TEST_CASE("max_ttl reached: new credentials before expiry, files rewritten, child signalled") {
  World w;
  // TTL 30, max 45: renewal at 20 s is capped at 25 s (final); re-fetch at 20 + 25*2/3 s.
  w.advance(t0 + 44s);
  CHECK(w.count("renew database/creds/app/lease1") == 1);
  CHECK(w.count("read database/creds/app") == 1);
  CHECK(w.vault.issued == 2);
  REQUIRE(w.child.rewrites.size() == 1);
  CHECK(w.child.rewrites[0] == std::vector<std::size_t>{0});
  CHECK(w.child.rendered[0].find("pw-canary-2") != std::string::npos);
  CHECK(w.child.signals == std::vector<int>{SIGHUP});
  CHECK(std::find(w.child.redacted.begin(), w.child.redacted.end(), "db=pw-canary-2") !=
        w.child.redacted.end());
  CHECK(w.session->stats().rotations == 1);
  // The new lease is renewed in turn.
  w.advance(t0 + 80s);
  CHECK(w.count("renew database/creds/app/lease2") >= 1);
}

TEST_CASE("a lease capped close to its max_ttl is replaced a third of a full TTL before it ends") {
  World w;
  w.vault.max_ttl = 35;
  // TTL 30, max 35: the renewal at 20 s gets 15 s (ends at 35 s). 2/3 of those 15 s would
  // re-fetch at 30 s, 5 s before the end; the session re-fetches at 35 - 30/3 = 25 s.
  w.advance(t0 + 24s);
  CHECK(w.count("renew database/creds/app/lease1") == 1);
  CHECK(w.count("read database/creds/app") == 0);
  w.advance(t0 + 25s);
  CHECK(w.count("read database/creds/app") == 1);
  CHECK(w.session->stats().rotations == 1);
}

TEST_CASE("a renewal that grants no TTL counts as refused: new credentials at once") {
  for (const std::int64_t ttl : {std::int64_t{0}, std::int64_t{-5}}) {
    World w;
    w.vault.renewal_answer = LeaseAnswer{ttl, true};
    w.advance(t0 + 20s);
    CHECK(w.count("renew database/creds/app/lease1") == 1);
    CHECK(w.count("read database/creds/app") == 1);
    CHECK(w.session->stats().rotations == 1);
    // The new lease (granted at 20 s) is renewed at two thirds of its TTL, not in a loop.
    w.advance(t0 + 40s);
    CHECK(w.count("renew database/creds/app/lease2") == 1);
    CHECK(w.vault.log.size() < 6);
  }
}

TEST_CASE("a huge TTL is capped at a year, not overflowed into the past") {
  World w;
  w.vault.renewal_answer = LeaseAnswer{std::numeric_limits<std::int64_t>::max(), true};
  w.advance(t0 + 20s);
  CHECK(w.count("renew database/creds/app/lease1") == 1);
  // Overflowed, the expiry would lie in the past: "expired", then re-reads in a loop. Capped,
  // the next renewal is months away; only the token (TTL 3600 s) is renewed meanwhile.
  w.advance(t0 + 3000s);
  CHECK(w.count("renew database") == 1);
  CHECK(w.count("read") == 0);
  CHECK(w.count("renew-self") == 1);
  CHECK(w.session->stats().rotations == 0);
}

TEST_CASE("exit revokes the current and the replaced leases, and the token only when asked") {
  SUBCASE("token obtained by login") {
    SuperviseSettings s;
    s.revoke_token = true;
    World w(s);
    w.advance(t0 + 44s);
    REQUIRE(w.vault.issued == 2);
    CHECK(w.session->shutdown() == 0);
    CHECK(w.count("revoke database/creds/app/lease1") == 1);
    CHECK(w.count("revoke database/creds/app/lease2") == 1);
    CHECK(w.count("revoke-self") == 1);
  }
  SUBCASE("token given by the user") {
    World w;
    w.session->shutdown();
    CHECK(w.count("revoke database/creds/app/lease1") == 1);
    CHECK(w.count("revoke-self") == 0);
  }
}

TEST_CASE("a refused renewal fetches new credentials at once") {
  World w;
  w.vault.refuse_renewal = true;
  w.advance(t0 + 20s);
  CHECK(w.count("renew database") == 1);
  CHECK(w.count("read database/creds/app") == 1);
  CHECK(w.child.signals == std::vector<int>{SIGHUP});
}

TEST_CASE("Vault down for a while: files kept, retries back off, renewal resumes") {
  World w;
  w.vault.down = true;
  w.advance(t0 + 26s);
  const int attempts = w.count("renew database");
  CHECK(attempts >= 3);
  CHECK(attempts <= 6); // backed off, not a busy loop
  CHECK(w.child.rewrites.empty());
  CHECK(w.child.signals.empty());
  w.vault.down = false;
  w.advance(t0 + 29s);
  CHECK(w.session->stats().renewals == 1);
  CHECK_FALSE(w.session->stopping());
}

TEST_CASE("Vault down past expiry: the child is stopped, then killed after the grace period") {
  SuperviseSettings s;
  s.grace = 5s;
  World w(s);
  w.vault.down = true;
  w.advance(t0 + 31s);
  CHECK(w.session->stopping());
  CHECK(w.child.signals == std::vector<int>{SIGTERM});
  w.advance(t0 + 37s);
  CHECK(w.child.signals == std::vector<int>{SIGTERM, SIGKILL});
  CHECK(w.session->on_child_exit(9 /* killed */));
}

TEST_CASE("on_expiry keep: the child keeps running, fetching goes on") {
  SuperviseSettings s;
  s.on_expiry = ExpiryAction::keep;
  World w(s);
  w.vault.down = true;
  w.advance(t0 + 40s);
  CHECK_FALSE(w.session->stopping());
  CHECK(w.child.signals.empty());
  w.vault.down = false;
  w.advance(t0 + 80s);
  CHECK(w.vault.issued >= 2);
  CHECK(w.child.signals.front() == SIGHUP);
}

TEST_CASE("change action restart: stop signal, then a new child with the new values") {
  SuperviseSettings s;
  s.on_change = ChangeAction::restart;
  s.stop_signal = SIGINT;
  World w(s);
  w.advance(t0 + 44s);
  CHECK(w.child.signals == std::vector<int>{SIGINT});
  CHECK_FALSE(w.session->on_child_exit(0));
  CHECK(w.child.starts == 1);
  CHECK_FALSE(w.session->stopping());
  // The replacement's exit ends the run.
  CHECK(w.session->on_child_exit(0));
}

TEST_CASE("KV v2 refresh reads metadata, and the value only when the version moved") {
  SuperviseSettings s;
  s.refresh = 10s;
  s.on_change = ChangeAction::none;
  World w(s);
  w.advance(t0 + 10s);
  CHECK(w.count("metadata secret/metadata/conf") == 1);
  CHECK(w.count("read secret/data/conf") == 0);
  w.vault.kv_version = 2;
  w.advance(t0 + 20s);
  CHECK(w.count("read secret/data/conf") == 1);
  REQUIRE_FALSE(w.child.rewrites.empty());
  CHECK(w.child.rewrites.back() == std::vector<std::size_t>{1});
  CHECK(w.child.rendered.back() == "kv-canary-v2");
  CHECK(w.child.signals.empty()); // on_change: none
}

TEST_CASE("lease tags, metadata paths and action names") {
  const auto tag = lease_tag("database/creds/app/AbCdEf123");
  CHECK(tag.rfind("lease-", 0) == 0);
  CHECK(tag.find("AbCdEf") == std::string::npos);
  CHECK(tag == lease_tag("database/creds/app/AbCdEf123"));
  CHECK(tag != lease_tag("database/creds/app/AbCdEf124"));
  CHECK(kv2_metadata_path("secret/data/app/x") == "secret/metadata/app/x");
  CHECK(kv2_metadata_path("kv/app") == "");
  CHECK(signal_from("SIGHUP") == SIGHUP);
  CHECK(signal_from("USR1") == SIGUSR1);
  CHECK(signal_from("15") == 15);
  CHECK_FALSE(signal_from("SIGFOO"));
  CHECK_FALSE(signal_from("99"));
  CHECK(change_action_from("restart") == ChangeAction::restart);
  CHECK_FALSE(change_action_from("reload"));
  CHECK(expiry_action_from("keep") == ExpiryAction::keep);
}

TEST_SUITE_END();
