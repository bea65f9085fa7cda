// The weight upload (engine/cuda/device_weights.h): every tensor of a BF16 and a sharded F32 golden
// checkpoint comes back from the device byte for byte, at 256-byte aligned offsets, through a
// staging buffer smaller than the tensors (so chunks and both halves are exercised); asking
// for more memory than the device has free is refused with both numbers; random weights are
// made on the device with the host's bytes. Labelled gpu;
// without a CUDA device it is skipped with the driver's reason.
#include <QtTest>

#include <cstring>

#include "engine/checkpoint.h"
#include "engine/cuda/device.h"
#include "tests/cuda_test_support.h"
#include "engine/cuda/device_weights.h"
#include "engine/error.h"
#include "engine/model_config.h"
#include "engine/random_weights.h"
#include "tests/test_support.h"

class CudaWeightsTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
    }

    void tensorsComeBackByteForByte() {
        for (const char* fixture : {"bf16_tied", "f32_sharded_gqa"}) {
            const moe::Checkpoint ck(test_support::fixture_path(fixture));
            const moe::cuda::DeviceWeights w(ck, {}, 4096);  // 2 KiB halves: many chunks
            size_t sum = 0;
            for (const std::string& n : ck.names()) {
                const moe::TensorView* v = ck.find(n);
                const auto back = w.download(n);
                QCOMPARE(back.size(), v->nbytes);
                QVERIFY(std::memcmp(back.data(), v->data, v->nbytes) == 0);
                QCOMPARE(w.tensor(n).offset % 256, size_t(0));
                QCOMPARE(w.tensor(n).dtype, v->dtype);
                sum += (v->nbytes + 255) / 256 * 256;
            }
            QCOMPARE(w.bytes(), sum);
            QVERIFY_THROWS_EXCEPTION(moe::Error, w.data("no.such.tensor"));
        }
    }

    void randomWeightsAreMadeOnTheDeviceAsOnTheHost() {
        // Random weights still pending are generated on the device; their bytes are the ones
        // the host makes from the same recipe, and the host never makes them.
        const moe::ModelConfig cfg = moe::load_model_config(test_support::fixture_path("bf16_tied"));
        for (const moe::DType dt : {moe::DType::f32, moe::DType::bf16, moe::DType::f16}) {
            const moe::RandomTensors lazy(cfg, dt, 7);
            const moe::cuda::DeviceWeights w(lazy, {}, 4096);
            const auto host = moe::make_random_tensors(cfg, dt, 7);
            QCOMPARE(lazy.names().size(), host->names().size());
            for (const std::string& n : host->names()) {
                QVERIFY2(lazy.pending(n) != nullptr, qPrintable(QString::fromStdString(n) + " was made on the host"));
                const moe::TensorView* v = host->find(n);
                const auto back = w.download(n);
                QCOMPARE(back.size(), v->nbytes);
                QVERIFY2(std::memcmp(back.data(), v->data, v->nbytes) == 0,
                         qPrintable(QString::fromStdString(n) + " differs (" + moe::dtype_name(dt) + ")"));
            }
        }
    }

    void tooLittleMemoryIsRefusedWithTheNumbers() {
        // A source that claims a 1 TiB tensor: refused before anything is read or allocated.
        struct Huge : moe::TensorSource {
            moe::TensorView v{"huge", moe::DType::bf16, {int64_t(1) << 39}, nullptr, size_t(1) << 40};
            const moe::TensorView* find(const std::string& n) const override { return n == "huge" ? &v : nullptr; }
            std::vector<std::string> names() const override { return {"huge"}; }
            std::string describe() const override { return "a 1 TiB source"; }
            std::string file_of(const std::string&) const override { return ""; }
            size_t weight_bytes() const override { return v.nbytes; }
        } huge;
        try {
            moe::cuda::DeviceWeights w(huge, {});
            QFAIL("a 1 TiB upload was not refused");
        } catch (const moe::Error& e) {
            const QString m = e.what();
            QVERIFY2(m.contains("a 1 TiB source") && m.contains("needs 1024.00 GiB") && m.contains("free of"), qPrintable(m));
        }
    }
};

QTEST_APPLESS_MAIN(CudaWeightsTest)
#include "test_cuda_weights.moc"
