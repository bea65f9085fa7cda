// Helpers of the bad-input suites: copying a fixture checkpoint into a temporary
// directory and damaging it (safetensors headers, config keys, shard indexes), and checking
// that an operation fails with a moe::Error of kind input that names what is wrong.
#pragma once

#include <QtEndian>
#include <QtTest>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include <functional>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/model.h"

// An edit of a JSON document (safetensors header, shard index), carried in QTest data.
using JsonEdit = std::function<void(nlohmann::ordered_json&)>;
Q_DECLARE_METATYPE(JsonEdit)

namespace damage {

using nlohmann::ordered_json;

// Tensors of f32_single (V = 96, H = 48, E = 16, k = 4; layer 0 dense, layers 1-2 MoE).
inline const char* const kEmbed = "model.embed_tokens.weight";                           // [96, 48]
inline const char* const kNorm0 = "model.layers.0.input_layernorm.weight";               // [48]
inline const char* const kNorm0Post = "model.layers.0.post_attention_layernorm.weight";  // [48]
inline const char* const kRouter1 = "model.layers.1.mlp.gate.weight";                    // [16, 48]
inline const char* const kSingle = "model.safetensors";
inline const char* const kShard2 = "model-00002-of-00003.safetensors";  // of f32_sharded_gqa
inline const char* const kIndex = "model.safetensors.index.json";

inline QString fixture_dir(const QString& name) {
    return QStringLiteral(MOE_SOURCE_DIR "/tests/fixtures/") + name;
}

inline QByteArray read_file(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

inline bool write_file(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(bytes) == bytes.size();
}

inline QByteArray le64(quint64 n) {
    QByteArray b(8, '\0');
    qToLittleEndian(n, b.data());
    return b;
}

inline quint64 header_length(const QByteArray& file_bytes) {
    return qFromLittleEndian<quint64>(file_bytes.constData());
}

// A (valid) safetensors file split for editing: header JSON, key order kept, and data section.
struct Safetensors {
    ordered_json header;
    QByteArray data;

    static Safetensors read(const QString& path) {
        const QByteArray bytes = read_file(path);
        const quint64 n = header_length(bytes);
        Safetensors st;
        st.header = ordered_json::parse(bytes.constData() + 8, bytes.constData() + 8 + n);
        st.data = bytes.mid(static_cast<qsizetype>(8 + n));
        return st;
    }
    // Writes a well-formed container: true length, header padded with spaces to 8 bytes.
    bool write(const QString& path) const {
        QByteArray h = QByteArray::fromStdString(header.dump());
        while (h.size() % 8) h.append(' ');
        return write_file(path, le64(static_cast<quint64>(h.size())) + h + data);
    }
};

// Copies a fixture's config.json, index and shards (not golden.json) into `tmp`; returns
// the copy's path, empty on failure.
inline QString copy_fixture(const QTemporaryDir& tmp, const QString& fixture) {
    if (!tmp.isValid()) return {};
    const QDir src(fixture_dir(fixture));
    const QStringList files = src.entryList({"config.json", "*.safetensors", "*.index.json"}, QDir::Files);
    if (!files.contains("config.json")) return {};
    for (const QString& f : files) {
        const QString dst = tmp.filePath(f);
        if (!QFile::copy(src.filePath(f), dst)) return {};
        QFile::setPermissions(dst, QFile::permissions(dst) | QFileDevice::WriteOwner);
    }
    return tmp.path();
}

inline bool edit_json_file(const QString& path, const JsonEdit& edit) {
    ordered_json j = ordered_json::parse(read_file(path).toStdString());
    edit(j);
    return write_file(path, QByteArray::fromStdString(j.dump(2)));
}

// Sets config.json's `key` to the raw JSON text `value` (which may be invalid JSON, e.g. NaN).
inline bool set_config_value(const QString& dir, const QString& key, const QByteArray& value) {
    const QString path = dir + "/config.json";
    ordered_json j = ordered_json::parse(read_file(path).toStdString());
    j[key.toStdString()] = "@@VALUE@@";
    QByteArray text = QByteArray::fromStdString(j.dump(2));
    text.replace("\"@@VALUE@@\"", value);
    return write_file(path, text);
}

inline void load(const QString& dir) {
    moe::LoadOptions opt;
    opt.threads = 1;
    (void)moe::load_model(dir.toStdString(), opt);
}

// Runs `f`. Returns empty when it threw a moe::Error of kind input whose message contains
// every needle; otherwise what happened instead. The message is printed for review.
inline QString input_error_problem(const std::function<void()>& f, const QStringList& needles,
                                   QString* message = nullptr) {
    try {
        f();
    } catch (const moe::Error& e) {
        const QString m = QString::fromStdString(e.what());
        if (message) *message = m;
        qInfo().noquote() << "message:" << m;
        if (e.kind() != moe::ErrorKind::input) return "moe::Error of kind failure, expected input: " + m;
        for (const QString& n : needles)
            if (!m.contains(n)) return QString("message lacks '%1': %2").arg(n, m);
        return {};
    } catch (const std::exception& e) {
        return QString("threw a std::exception, not a moe::Error: ") + e.what();
    } catch (...) {
        return "threw something that is not a std::exception";
    }
    return "no error: the damaged input was accepted";
}

}  // namespace damage

using namespace damage;

// CHECK_INPUT_ERROR(statement, needles): `statement` must throw an input error containing them.
#define CHECK_INPUT_ERROR(statement, ...)                                                \
    do {                                                                                 \
        const QString problem_ = input_error_problem([&] { statement; }, (__VA_ARGS__)); \
        QVERIFY2(problem_.isEmpty(), qPrintable(problem_));                              \
    } while (0)
