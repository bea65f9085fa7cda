// The committed text corpora (datasets/) against their manifest: every split file's size,
// document count and sha256 match datasets/manifest.json; every line is a {"id", "text"}
// object whose text is non-empty, strictly valid UTF-8 (own validator, checked on known
// good and bad byte sequences first); ids are unique within a domain, and no id and no text
// appears in two splits of a domain. Directories a researcher adds beside the committed
// domains get the same per-document checks. GSM8K must not be copied into the project. The code
// domain is code only (tests/code_domain_check.py, with Debian's python3: every document parses
// as Python and holds no comment or docstring; the stripping on hand-written cases).
#include <QCryptographicHash>
#include <QFileInfo>
#include <QtTest>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/python_support.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kRepo = MOE_SOURCE_DIR;
const fs::path kDatasets = kRepo / "datasets";
const std::vector<std::string> kSplits = {"train", "validation", "test"};
constexpr std::uintmax_t kCommittedBudget = 8'000'000;  // bytes of split files, all domains

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Offset of the first byte that is not part of a well-formed UTF-8 sequence (Unicode 15,
// table 3-7: no overlong forms, no surrogates U+D800..DFFF, nothing above U+10FFFF, no
// truncated sequences), or npos when all of `s` is valid.
std::size_t invalid_utf8_offset(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            if (b0 == 0xE0) lo = 0xA0;  // overlong
            if (b0 == 0xED) hi = 0x9F;  // surrogates
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            if (b0 == 0xF0) lo = 0x90;  // overlong
            if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
        } else {
            return i;  // continuation byte, C0/C1 overlong lead, or F5..FF
        }
        if (i + len > s.size()) return i;
        const auto b1 = static_cast<unsigned char>(s[i + 1]);
        if (b1 < lo || b1 > hi) return i;
        for (std::size_t k = 2; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (b < 0x80 || b > 0xBF) return i;
        }
        i += len;
    }
    return std::string_view::npos;
}

struct Document {
    std::string id;
    std::string text;
};

// The documents of one split file; records a test failure (with file and line) and stops at
// the first line that is not a {"id": str, "text": str} object of valid UTF-8.
std::vector<Document> read_split(const fs::path& path, bool& ok) {
    ok = false;
    std::vector<Document> docs;
    const std::string data = read_bytes(path);
    if (data.empty() || data.back() != '\n') {
        qWarning("%s: empty, or last line not terminated by a newline", path.c_str());
        return docs;
    }
    std::size_t start = 0;
    int line_no = 0;
    while (start < data.size()) {
        const std::size_t end = data.find('\n', start);
        const std::string_view line(data.data() + start, end - start);
        ++line_no;
        start = end + 1;
        const std::size_t bad = invalid_utf8_offset(line);
        if (bad != std::string_view::npos) {
            qWarning("%s:%d: invalid UTF-8 at byte %zu of the line", path.c_str(), line_no, bad);
            return docs;
        }
        json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) {
            qWarning("%s:%d: not valid JSON", path.c_str(), line_no);
            return docs;
        }
        if (!j.is_object() || j.size() != 2 || !j.contains("id") || !j.contains("text") || !j["id"].is_string() ||
            !j["text"].is_string()) {
            qWarning("%s:%d: expected exactly {\"id\": string, \"text\": string}", path.c_str(), line_no);
            return docs;
        }
        Document doc{j["id"].get<std::string>(), j["text"].get<std::string>()};
        // \u escapes in the JSON decode to code points the raw-line check did not see.
        if (invalid_utf8_offset(doc.text) != std::string_view::npos ||
            invalid_utf8_offset(doc.id) != std::string_view::npos) {
            qWarning("%s:%d: id or text decodes to invalid UTF-8", path.c_str(), line_no);
            return docs;
        }
        if (doc.id.empty() || doc.text.find_first_not_of(" \t\n") == std::string::npos) {
            qWarning("%s:%d: empty id or empty text", path.c_str(), line_no);
            return docs;
        }
        docs.push_back(std::move(doc));
    }
    ok = true;
    return docs;
}

json manifest() {
    return json::parse(read_bytes(kDatasets / "manifest.json"));
}

// Domain directories to check: the manifest's, then any other directory under datasets/
// holding split files (a researcher's own domain).
std::vector<std::string> domain_dirs() {
    std::vector<std::string> names;
    const json m = manifest();  // not a temporary: the loops below iterate into it
    for (const auto& d : m["domains"]) names.push_back(d["name"].get<std::string>());
    std::set<std::string> extra;
    for (const auto& entry : fs::directory_iterator(kDatasets)) {
        if (!entry.is_directory()) continue;
        const std::string name = entry.path().filename().string();
        for (const auto& s : kSplits)
            if (fs::exists(entry.path() / (s + ".jsonl"))) extra.insert(name);
    }
    for (const auto& name : extra)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    return names;
}

}  // namespace

class TestDatasets : public QObject {
    Q_OBJECT

private slots:
    void utf8_validator_data();
    void utf8_validator();
    void manifest_describes_domains();
    void split_files_match_manifest_data();
    void split_files_match_manifest();
    void documents_are_well_formed_data();
    void documents_are_well_formed();
    void committed_size_within_budget();
    void gsm8k_is_external();
    void code_documents_are_code_only();
};

void TestDatasets::utf8_validator_data() {
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<int>("offset");  // -1: valid
    QTest::newRow("ascii") << QByteArray("plain text\n") << -1;
    QTest::newRow("2-byte é") << QByteArray("caf\xC3\xA9") << -1;
    QTest::newRow("3-byte 中") << QByteArray("\xE4\xB8\xAD") << -1;
    QTest::newRow("4-byte U+1F600") << QByteArray("\xF0\x9F\x98\x80") << -1;
    QTest::newRow("U+10FFFF") << QByteArray("\xF4\x8F\xBF\xBF") << -1;
    QTest::newRow("U+D7FF") << QByteArray("\xED\x9F\xBF") << -1;
    QTest::newRow("stray continuation") << QByteArray("a\x80") << 1;
    QTest::newRow("overlong C0") << QByteArray("\xC0\xAF") << 0;
    QTest::newRow("overlong E0") << QByteArray("x\xE0\x80\xAF") << 1;
    QTest::newRow("overlong F0") << QByteArray("\xF0\x8F\xBF\xBF") << 0;
    QTest::newRow("surrogate D800") << QByteArray("\xED\xA0\x80") << 0;
    QTest::newRow("above U+10FFFF") << QByteArray("\xF4\x90\x80\x80") << 0;
    QTest::newRow("F5 lead") << QByteArray("\xF5\x80\x80\x80") << 0;
    QTest::newRow("truncated 3-byte") << QByteArray("ab\xE4\xB8") << 2;
    QTest::newRow("bad 3rd byte") << QByteArray("\xE4\xB8\x41") << 0;
    QTest::newRow("latin-1 é") << QByteArray("caf\xE9!") << 3;
}

void TestDatasets::utf8_validator() {
    QFETCH(QByteArray, bytes);
    QFETCH(int, offset);
    const std::size_t got = invalid_utf8_offset(std::string_view(bytes.constData(), bytes.size()));
    QCOMPARE(got == std::string_view::npos ? -1 : static_cast<int>(got), offset);
}

void TestDatasets::manifest_describes_domains() {
    const json m = manifest();
    QVERIFY(m["domains"].is_array());
    QVERIFY(!m["domains"].empty());
    std::set<std::string> names;
    for (const auto& d : m["domains"]) {
        const std::string name = d.value("name", "");
        QVERIFY2(!name.empty() && names.insert(name).second, "domain names unique, non-empty");
        for (const char* key : {"description", "licence", "copyright_file"})
            QVERIFY2(d.contains(key) && d[key].is_string() && !d[key].get<std::string>().empty(),
                     (name + ": missing " + key).c_str());
        const json& src = d["source"];
        QVERIFY2(src.contains("package") && src.contains("version") && src["paths"].is_array() && !src["paths"].empty(),
                 (name + ": source needs package, version, paths").c_str());
        const fs::path copyright = kRepo / d["copyright_file"].get<std::string>();
        QVERIFY2(fs::is_regular_file(copyright) && fs::file_size(copyright) > 0,
                 (name + ": no copyright file " + copyright.string()).c_str());
        for (const auto& s : kSplits) QVERIFY2(d["splits"].contains(s), (name + ": no split " + s).c_str());
    }
}

void TestDatasets::split_files_match_manifest_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<qint64>("bytes");
    QTest::addColumn<int>("documents");
    QTest::addColumn<QString>("sha256");
    const json m = manifest();
    for (const auto& d : m["domains"]) {
        for (const auto& s : kSplits) {
            const json& e = d["splits"][s];
            const std::string file = e["file"].get<std::string>();
            QTest::newRow(file.c_str()) << QString::fromStdString(file) << e["bytes"].get<qint64>()
                                        << e["documents"].get<int>()
                                        << QString::fromStdString(e["sha256"].get<std::string>());
        }
    }
}

void TestDatasets::split_files_match_manifest() {
    QFETCH(QString, file);
    QFETCH(qint64, bytes);
    QFETCH(int, documents);
    QFETCH(QString, sha256);
    const fs::path path = kRepo / file.toStdString();
    QVERIFY2(fs::is_regular_file(path), qPrintable(file + " missing"));
    const std::string data = read_bytes(path);
    QCOMPARE(static_cast<qint64>(data.size()), bytes);
    const QByteArray digest =
        QCryptographicHash::hash(QByteArray::fromRawData(data.data(), static_cast<qsizetype>(data.size())),
                                 QCryptographicHash::Sha256)
            .toHex();
    QCOMPARE(QString::fromLatin1(digest), sha256);
    QCOMPARE(static_cast<int>(std::count(data.begin(), data.end(), '\n')), documents);
}

void TestDatasets::documents_are_well_formed_data() {
    QTest::addColumn<QString>("domain");
    for (const auto& name : domain_dirs()) QTest::newRow(name.c_str()) << QString::fromStdString(name);
}

void TestDatasets::documents_are_well_formed() {
    QFETCH(QString, domain);
    std::map<std::string, std::string> split_of_id;   // id -> split
    std::map<QByteArray, std::string> split_of_text;  // sha256 of text -> split
    std::size_t total = 0;
    for (const auto& s : kSplits) {
        const fs::path path = kDatasets / domain.toStdString() / (s + ".jsonl");
        QVERIFY2(fs::is_regular_file(path), qPrintable(QString::fromStdString(path.string()) + " missing"));
        bool ok = false;
        const std::vector<Document> docs = read_split(path, ok);
        QVERIFY2(ok, qPrintable("malformed " + QString::fromStdString(path.string())));
        QVERIFY2(!docs.empty(), qPrintable("no documents in " + QString::fromStdString(path.string())));
        total += docs.size();
        for (const auto& doc : docs) {
            const auto [it, fresh] = split_of_id.emplace(doc.id, s);
            QVERIFY2(fresh, qPrintable(QString("id '%1' in %2 and %3")
                                           .arg(QString::fromStdString(doc.id), QString::fromStdString(it->second),
                                                QString::fromStdString(s))));
            const QByteArray key = QCryptographicHash::hash(
                QByteArray::fromRawData(doc.text.data(), static_cast<qsizetype>(doc.text.size())),
                QCryptographicHash::Sha256);
            const auto [tit, tfresh] = split_of_text.emplace(key, s);
            if (!tfresh && tit->second != s)
                QFAIL(qPrintable(QString("text of '%1' (%2) also appears in %3")
                                     .arg(QString::fromStdString(doc.id), QString::fromStdString(s),
                                          QString::fromStdString(tit->second))));
        }
    }
    QVERIFY(total > 0);
}

void TestDatasets::committed_size_within_budget() {
    std::uintmax_t total = 0;
    const json m = manifest();
    for (const auto& d : m["domains"])
        for (const auto& s : kSplits) total += fs::file_size(kRepo / d["splits"][s]["file"].get<std::string>());
    QVERIFY2(total < kCommittedBudget,
             qPrintable(QString("committed corpora take %1 bytes, budget %2").arg(total).arg(kCommittedBudget)));
}

void TestDatasets::gsm8k_is_external() {
    // GSM8K is read from beside the checkout, never committed: the manifest names it as an
    // external domain and no datasets/gsm8k directory exists.
    bool listed = false;
    const json external = manifest().value("external", json::array());
    for (const auto& e : external) {
        if (e.value("name", "") != "gsm8k") continue;
        listed = true;
        QVERIFY(!e.value("path", "").empty());
        QVERIFY(e.value("origin", "").rfind("https://", 0) == 0);
        QVERIFY(!e.value("licence", "").empty());
    }
    QVERIFY2(listed, "manifest.json has no external entry for gsm8k");
    QVERIFY2(!fs::exists(kDatasets / "gsm8k"), "datasets/gsm8k must not be committed");
}

void TestDatasets::code_documents_are_code_only() {
    if (!QFileInfo::exists(test_support::kPython)) QSKIP("no /usr/bin/python3: the code domain's check is a Python script");
    const test_support::PythonRun r = test_support::run_python({"tests/code_domain_check.py"});
    const QString out = QString::fromUtf8(r.out + r.err);
    QVERIFY2(r.code == 0, qPrintable(out));
    QVERIFY2(out.contains(" 0 failures"), qPrintable(out));
}

QTEST_GUILESS_MAIN(TestDatasets)
#include "test_datasets.moc"
