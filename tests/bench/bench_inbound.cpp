// The inbound checks (issue: verifying mode), verified messages per second with a warm DNS
// cache (every answer in memory), against the peers users would otherwise deploy:
//
//   inbound/ours    spf::Checker for MAIL FROM and HELO, DKIM (RSA-2048, relaxed/relaxed),
//                   DMARC with the Public Suffix List, the Authentication-Results field
//   inbound/peers   libspf2 (both identities), OpenDKIM (verification), OpenDMARC (policy)
//
// Same message (10 KiB body), same records, same results (checked before timing). Figures
// only; tests/bench/run-inbound-bench prints the ratio.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "dkim/dkim/signer.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/inbound/verifier.hpp"
#include "dkim/mail/header.hpp"
#include "inbound_peers.h"
#include "software_signer.hpp"

namespace dkim {
namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));
constexpr const char* kClient = "192.0.2.25";
constexpr const char* kHelo = "mail.bench.example";
constexpr const char* kMailFrom = "news@bench.example";

struct Fixture {
    std::unique_ptr<test::SoftwareSigner> key = test::SoftwareSigner::generate(2048);
    // name, type, data: served to both sides.
    std::vector<std::string> zone;
    std::string message;
    std::vector<std::string> fields;  // the header fields without CRLF, for OpenDKIM
    std::string body;

    Fixture() {
        zone = {"bench.example",
                "TXT",
                "v=spf1 include:_spf.bench.example -all",
                "_spf.bench.example",
                "TXT",
                "v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.0/24 -all",
                "mail.bench.example",
                "TXT",
                "v=spf1 a -all",
                "mail.bench.example",
                "A",
                kClient,
                "_dmarc.bench.example",
                "TXT",
                "v=DMARC1; p=reject; rua=mailto:d@bench.example",
                "sel._domainkey.bench.example",
                "TXT",
                key->key_record()};
        std::string text =
            "From: News <news@bench.example>\r\nTo: Reader <reader@inbound.example>\r\n"
            "Subject: The weekly digest\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <digest-48@bench.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n";
        while (text.size() < 10 * 1024) {
            text += "The quick brown fox jumps over the lazy dog, line after line.\r\n";
        }
        auto split = mail::split_message(text);
        MessageSigner signer({SigningKey{"bench.example", "sel", key.get(), {}}});
        signer.update_body(split->body);
        const std::string signature = *signer.finish(split->header, kNow);
        message = signature + text;
        auto whole = mail::split_message(message);
        for (std::size_t i = 0; i < whole->header.size(); ++i) {
            std::string raw(whole->header.raw(i));
            raw.resize(raw.size() - 2);  // the CRLF
            fields.push_back(std::move(raw));
        }
        body = std::string(whole->body);
    }

    void fill(dns::FakeResolver& resolver) const {
        for (std::size_t i = 0; i < zone.size(); i += 3) {
            if (zone[i + 1] == "A") {
                resolver.add(zone[i], dns::RecordType::a, zone[i + 2]);
            } else {
                resolver.add(zone[i], dns::RecordType::txt, zone[i + 2]);
            }
        }
    }
};

const Fixture& fixture() {
    static const Fixture f;
    return f;
}

void BM_InboundOurs(benchmark::State& state) {
    const Fixture& f = fixture();
    dns::FakeResolver resolver;
    f.fill(resolver);
    KeyFetcher keys(resolver);
    inbound::Settings settings;
    settings.authserv_id = "mx.inbound.example";
    auto psl = dmarc::PublicSuffixList::load();
    if (!psl) {
        state.SkipWithError(psl.error().c_str());
        return;
    }
    settings.dmarc.psl = *psl;
    const inbound::Verifier verifier(resolver, keys, settings);
    const inbound::Envelope envelope{*net::IpAddress::parse(kClient), kHelo, kMailFrom};
    for (auto _ : state) {
        const auto spf = verifier.check_spf(envelope, 1'764'115'200);
        const inbound::Verdict v = verifier.finish(spf, f.message, kNow);
        if (v.dmarc.result != dmarc::Result::pass || !v.dmarc.dkim_aligned ||
            v.dkim.at(0).result != mail::AuthResult::pass ||
            v.spf.mail_from.result != spf::Result::pass ||
            v.spf.helo->result != spf::Result::pass) {
            state.SkipWithError("unexpected verdict");
            break;
        }
        benchmark::DoNotOptimize(v.authentication_results.data());
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_InboundPeers(benchmark::State& state) {
    const Fixture& f = fixture();
    std::vector<const char*> zone;
    for (const auto& s : f.zone) {
        zone.push_back(s.c_str());
    }
    zone.push_back(nullptr);
    void* peer = inbound_peer_new(zone.data(), f.zone[f.zone.size() - 1].c_str(),
                                  "/usr/share/publicsuffix/public_suffix_list.dat");
    if (peer == nullptr) {
        state.SkipWithError("the peers did not initialise");
        return;
    }
    std::vector<const char*> fields;
    std::vector<std::size_t> sizes;
    for (const auto& field : f.fields) {
        fields.push_back(field.c_str());
        sizes.push_back(field.size());
    }
    for (auto _ : state) {
        const int policy =
            inbound_peer_check(peer, kClient, kHelo, kMailFrom, "bench.example", fields.data(),
                               sizes.data(), fields.size(), f.body.data(), f.body.size());
        if (policy != 15 /* DMARC_POLICY_PASS */ || !inbound_peer_spf_passed(peer) ||
            !inbound_peer_dkim_passed(peer)) {
            state.SkipWithError("the peers did not pass the message");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
    inbound_peer_free(peer);
}

BENCHMARK(BM_InboundOurs)->Name("inbound/ours");
BENCHMARK(BM_InboundPeers)->Name("inbound/peers");

}  // namespace
}  // namespace dkim

BENCHMARK_MAIN();
