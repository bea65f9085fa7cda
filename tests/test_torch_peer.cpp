// The PyTorch peer of the benchmarks (bench/torch_peer.py) computes what the engine computes:
// on the embedded model, in f32, its last-position logits for a few token ids equal the CPU
// engine's to 1e-4, so its timings compare the same work. And its benchmark mode prints the
// JSON fields the performance notes read. Skipped (with the reason) without Debian's
// python3-torch.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "tests/python_support.h"

namespace {
using test_support::kPython;
QString source(const char* rel) { return QString(MOE_SOURCE_DIR) + "/" + rel; }

QByteArray run_peer(const QStringList& args) {
    const test_support::PythonRun r = test_support::run_python(QStringList{source("bench/torch_peer.py")} + args, 180000);
    if (r.code != 0) {
        qWarning("%s", r.err.constData());
        return {};
    }
    return r.out;
}
}  // namespace

class TestTorchPeer : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        if (!QFileInfo::exists(kPython)) QSKIP("no /usr/bin/python3: the peer needs Debian's python3");
        if (test_support::run_python({"-c", "import torch"}, 60000).code != 0)
            QSKIP("/usr/bin/python3 cannot import torch (install Debian's python3-torch)");
    }

    void peerLogitsEqualTheEngines() {
        const std::string dir = source("resources/models/default").toStdString();
        const std::vector<int32_t> ids = {1, 50, 300, 7, 99, 1234, 4000};
        moe::LoadOptions lo;
        lo.threads = 1;
        auto model = moe::load_model(dir, lo);
        moe::Session s(*model);
        std::vector<float> want;
        moe::ForwardOptions o;
        o.all_logits = false;
        s.forward(ids, o, want);
        QStringList id_list;
        for (int32_t i : ids) id_list << QString::number(i);
        const QByteArray out = run_peer({"--model", QString::fromStdString(dir), "--ids", id_list.join(','), "--dtype", "f32",
                                         "--device", "cpu", "--threads", "1"});
        QVERIFY(!out.isEmpty());
        const auto got = nlohmann::json::parse(out.toStdString())["logits"].get<std::vector<float>>();
        QCOMPARE(got.size(), want.size());
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
        qInfo("peer vs engine: max |Δlogit| %.3g", worst);
        QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    }

    void benchmarkModePrintsItsFields() {
        const QByteArray out = run_peer({"--random-config", source("bench/configs/moe-small.json"), "--device", "cpu",
                                         "--layers", "2", "--prompt-tokens", "16", "--gen-tokens", "2", "--repeat", "1",
                                         "--threads", "1"});
        QVERIFY(!out.isEmpty());
        const auto j = nlohmann::json::parse(out.toStdString());
        for (const char* key : {"peer", "device", "dtype", "layers", "prefill_tok_s", "decode_tok_s", "weight_bytes", "torch"})
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["layers"].get<int>(), 2);
        QVERIFY(j["prefill_tok_s"].get<double>() > 0 && j["decode_tok_s"].get<double>() > 0);
    }
};

QTEST_GUILESS_MAIN(TestTorchPeer)
#include "test_torch_peer.moc"
