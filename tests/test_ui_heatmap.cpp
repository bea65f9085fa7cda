// GUI suite without GL (offscreen platform): the model panel opens a model on a worker
// thread and shows the engine's numbers, or the error in place; a trace runs on a worker
// thread, reports progress through the event loop and can be cancelled; the
// corpus's domains are counted in tokens with the model's tokenizer; the
// heatmap view holds exactly the numbers analysis/expert_stats returns for the run, in every
// measure and both orientations (in its grid and in the colour map's cells), and its hover
// text names the cell's numbers and a click opens the expert's detail; the statistics and
// per-token CSV exports write files that parse; without GL the token routing inspector shows a placeholder.
#include <qcustomplot.h>
#include <QApplication>
#include <QComboBox>
#include <QImage>
#include <QLabel>
#include <QSignalSpy>
#include <QStandardItemModel>
#include <QtTest>
#include <cmath>

#include "analysis/corpus_tokens.h"
#include "analysis/csv_exports.h"
#include "analysis/expert_stats.h"
#include "analysis/fingerprint.h"
#include "analysis/trace_runner.h"
#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "engine/model_config.h"
#include "tests/ui_test_support.h"
#include "ui/expert_detail.h"
#include "ui/heatmap_view.h"
#include "ui/model_panel.h"
#include "ui/routing_inspector.h"
#include "ui/workbench.h"

using namespace moe::ui;
namespace an = moe::analysis;

class TestUiHeatmap : public QObject {
    Q_OBJECT

    ui_test::Fixture fx_;
    int64_t run_id_ = 0;

    // Requests a heatmap through the workbench into the view and waits for it (or its error).
    bool show(Workbench& wb, HeatmapView& view, HeatmapAxes axes, HeatmapMeasure measure) {
        view.setAxes(axes);
        view.setMeasure(measure);
        view.setRun(run_id_);
        wb.waitIdle(30000);
        const auto& g = view.grid();
        return g && g->request.axes == axes && g->request.measure == measure && view.message().isEmpty();
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(fx_.ok);
    }

    void modelPanelShowsTheEnginesNumbers() {
        Workbench wb;
        ModelPanel panel(&wb);
        wb.openModel(fx_.model_dir);
        QTRY_VERIFY_WITH_TIMEOUT(wb.hasModel(), 30000);
        const moe::ModelConfig c = moe::load_model_config(fx_.model_dir.toStdString());
        QCOMPARE(wb.modelSummary().n_routed_experts, c.n_routed_experts);
        QCOMPARE(wb.modelSummary().n_shared_experts, c.n_shared_experts);
        QCOMPARE(wb.modelSummary().n_expert_used, c.num_experts_per_tok);
        QCOMPARE(wb.modelSummary().total_params, c.total_params());
        QCOMPARE(wb.modelSummary().activated_params, c.activated_params());
        QCOMPARE(wb.modelSummary().dtype, std::string("F32"));
        QVERIFY(wb.canTrace());
        QVERIFY(panel.errorText().isEmpty());
        QCOMPARE(panel.fieldText("topk"), QString::number(c.num_experts_per_tok));
        QCOMPARE(panel.fieldText("shared"), QString::number(c.n_shared_experts));
        QVERIFY2(panel.fieldText("layers").startsWith(QString::number(c.num_hidden_layers) + ":"),
                 qPrintable(panel.fieldText("layers")));
        QVERIFY(panel.fieldText("routed").startsWith(QString::number(c.n_routed_experts)));
        QVERIFY(panel.fieldText("dtype").startsWith("F32"));
    }

    void modelErrorsAreShownInPlace() {
        Workbench wb;
        ModelPanel panel(&wb);
        const QString missing = fx_.tmp.filePath("no-such-model");
        wb.openModel(missing);
        QTRY_VERIFY_WITH_TIMEOUT(!panel.errorText().isEmpty(), 30000);
        QVERIFY2(panel.errorText().contains("no-such-model"), qPrintable(panel.errorText()));
        QVERIFY(!wb.hasModel());

        // A damaged config.json: the engine's message, naming the file, in the panel.
        const QString bad = fx_.tmp.filePath("bad-model");
        QDir().mkpath(bad);
        QFile f(bad + "/config.json");
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\"model_type\": \"deepseek\", \"hidden_size\": ");
        f.close();
        wb.openModel(bad);
        QTRY_VERIFY_WITH_TIMEOUT(panel.errorText().contains("config.json"), 30000);

        // A good model afterwards clears the error.
        wb.openModel(fx_.model_dir);
        QTRY_VERIFY_WITH_TIMEOUT(wb.hasModel(), 30000);
        QVERIFY(panel.errorText().isEmpty());
    }

    void traceRunsOnAWorkerThread() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        QCOMPARE(wb.corpus()->domains.size(), size_t(2));
        QCOMPARE(wb.corpus()->domains[0].documents, int64_t(4));
        // Token counts: the trace's own tokenization (analysis/corpus_tokens) with the model's tokenizer.
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(fx_.model_dir.toStdString());
        for (size_t i = 0; i < 2; ++i) {
            int64_t expected = 0;
            for (const auto& doc : an::tokenize_domain(wb.corpus()->corpus.domains[i], tok, 0)) expected += int64_t(doc.ids.size());
            QCOMPARE(wb.corpus()->domains[i].tokens, expected);
        }
        QSignalSpy progress(&wb, &Workbench::traceProgress);
        QSignalSpy finished(&wb, &Workbench::traceFinished);
        // startTrace returns at once, the trace running on a worker; its progress and its end
        // arrive as events of this thread's loop.
        wb.startTrace({}, 150);
        QVERIFY(wb.traceRunning());
        QCOMPARE(finished.size(), 0);
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 120000);
        QVERIFY2(finished[0][0].toBool(), qPrintable(finished[0][1].toString()));
        QVERIFY(progress.size() > 0);
        QCOMPARE(wb.traceStatus().tokens_done, wb.traceStatus().tokens_total);
        QCOMPARE(wb.traceStatus().tokens_total, int64_t(300));  // 150 per domain, the last document cut
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(wb.runs().size(), size_t(1));
        const an::RunInfo& run = wb.runs()[0];
        QCOMPARE(run.status, std::string("complete"));
        QCOMPARE(run.n_tokens, int64_t(300));
        run_id_ = run.run_id;
    }

    void heatmapHoldsTheAnalysisNumbers() {
        QVERIFY(run_id_);
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        HeatmapView view;
        view.resize(900, 500);
        view.show();
        connect(&view, &HeatmapView::requestChanged, &wb, &Workbench::requestHeatmap);
        connect(&wb, &Workbench::heatmapReady, &view, &HeatmapView::showGrid);
        connect(&wb, &Workbench::heatmapFailed, &view, &HeatmapView::showError);

        an::StoreOptions ro;
        ro.read_only = true;
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString(), ro);
        const auto shares = an::expert_shares(store, run_id_);
        const auto ratios = an::domain_log_ratios(store, run_id_);
        QVERIFY(!shares.empty());

        for (HeatmapAxes axes : {HeatmapAxes::experts_by_layers, HeatmapAxes::experts_by_domains})
            for (HeatmapMeasure m : {HeatmapMeasure::share, HeatmapMeasure::ratio_to_uniform, HeatmapMeasure::log_ratio,
                                     HeatmapMeasure::mean_gate_weight}) {
                QVERIFY2(show(wb, view, axes, m), qPrintable(QString("%1: %2").arg(measure_name(m), view.message())));
                const HeatmapGrid& g = *view.grid();
                QCPColorMapData* data = view.colorMap()->data();  // cell() is not const
                QCOMPARE(data->keySize(), static_cast<int>(g.n_cols));
                QCOMPARE(data->valueSize(), static_cast<int>(g.n_rows));
                int checked = 0;
                auto check = [&](const std::string& domain, int64_t layer, int64_t expert, double expected) {
                    for (int64_t r = 0; r < g.n_rows; ++r) {
                        if (g.row_domains[size_t(r)] != domain || g.row_layers[size_t(r)] != layer) continue;
                        const double cell = g.at(r, expert).value, drawn = data->cell(int(expert), int(r));
                        if (std::isnan(expected)) {
                            QVERIFY(std::isnan(cell) && std::isnan(drawn));
                        } else {
                            QCOMPARE(cell, expected);
                            QCOMPARE(drawn, expected);
                        }
                        ++checked;
                    }
                };
                if (m == HeatmapMeasure::log_ratio) {
                    for (const auto& lr : ratios) check(lr.domain, lr.layer, lr.expert, lr.log_ratio);
                } else {
                    for (const auto& s : shares)
                        check(s.domain, s.layer, s.expert,
                              m == HeatmapMeasure::share              ? s.share
                              : m == HeatmapMeasure::ratio_to_uniform ? s.ratio_to_uniform
                                                                      : s.mean_gate_weight.value_or(NAN));
                }
                QCOMPARE(checked, static_cast<int>(g.n_rows * g.n_cols));  // every cell checked once
                QCOMPARE(g.diverging, m == HeatmapMeasure::log_ratio);
            }
    }

    void otherDomainAndLayerArePickable() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        HeatmapView view;
        connect(&view, &HeatmapView::requestChanged, &wb, &Workbench::requestHeatmap);
        connect(&wb, &Workbench::heatmapReady, &view, &HeatmapView::showGrid);
        QVERIFY(show(wb, view, HeatmapAxes::experts_by_layers, HeatmapMeasure::share));
        QCOMPARE(view.grid()->request.domain, std::string("code"));
        auto* picker = view.findChild<QComboBox*>("heatmapPicker");
        QCOMPARE(picker->count(), 2);
        picker->setCurrentIndex(1);
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(view.grid()->request.domain, std::string("prose"));
        QCOMPARE(view.grid()->row_domains.front(), std::string("prose"));
        QVERIFY(show(wb, view, HeatmapAxes::experts_by_domains, HeatmapMeasure::share));
        QCOMPARE(picker->count(), static_cast<int>(view.grid()->layers.size()));
        picker->setCurrentIndex(picker->count() - 1);
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(*view.grid()->request.layer, view.grid()->layers.back());
        QCOMPARE(view.grid()->row_labels, (std::vector<std::string>{"code", "prose"}));
    }

    void hoverNamesTheCell() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        HeatmapView view;
        view.resize(900, 500);
        view.show();
        connect(&view, &HeatmapView::requestChanged, &wb, &Workbench::requestHeatmap);
        connect(&wb, &Workbench::heatmapReady, &view, &HeatmapView::showGrid);
        QVERIFY(show(wb, view, HeatmapAxes::experts_by_layers, HeatmapMeasure::share));
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        view.plot()->replot();
        const HeatmapGrid& g = *view.grid();
        const int64_t row = g.n_rows - 1, expert = 5;
        const QPoint pos(int(view.plot()->xAxis->coordToPixel(double(expert))),
                         int(view.plot()->yAxis->coordToPixel(double(row))));
        const auto cell = view.cellAt(pos);
        QVERIFY(cell);
        QCOMPARE(cell->first, row);
        QCOMPARE(cell->second, expert);
        const QString tip = view.toolTipAt(pos);
        const HeatmapCell& c = g.at(row, expert);
        QVERIFY2(tip.contains(QString("layer %1 · expert %2").arg(g.row_layers[size_t(row)]).arg(expert)), qPrintable(tip));
        QVERIFY2(tip.contains(QString("%1 of %2").arg(c.count).arg(c.tokens)), qPrintable(tip));
        QVERIFY(view.toolTipAt(QPoint(1, 1)).isEmpty());  // outside the map

        // Export: a PNG that reads back at the size asked, a PDF, an SVG, and a refusal of other suffixes.
        const QString png = fx_.tmp.filePath("heatmap.png"), pdf = fx_.tmp.filePath("heatmap.pdf");
        QVERIFY(view.exportImage(png));
        const QImage image(png);
        QVERIFY(!image.isNull());
        QVERIFY(image.width() >= 1200);
        QVERIFY(view.exportImage(pdf));
        QFile f(pdf);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QVERIFY(f.read(5) == "%PDF-");
        const QString svg = fx_.tmp.filePath("heatmap.svg");
        QVERIFY(view.exportImage(svg));
        QFile sf(svg);
        QVERIFY(sf.open(QIODevice::ReadOnly));
        const QByteArray text = sf.readAll();
        QVERIFY(text.contains("<svg") && text.contains("</svg>"));
        QVERIFY(!view.exportImage(fx_.tmp.filePath("heatmap.tiff")));
    }

    void differenceOfTwoRuns() {
        // A second run of the same documents with experts 0 and 1 of layer 1 switched off; the
        // difference grid is run 1's share minus the second run's, cell by cell.
        QVERIFY(run_id_);
        auto model = moe::load_model(fx_.model_dir.toStdString());
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(fx_.model_dir.toStdString());
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const an::RunInfo first = store.run(run_id_);
        const moe::ExpertMask mask = moe::ExpertMask::parse("L1:0,1", model->config(), moe::MaskMode::reroute);
        an::TraceOptions opt;
        opt.mask = &mask;
        opt.max_tokens = first.max_tokens;
        const an::TraceResult b = an::run_trace(store, *model, an::describe_model(*model, &tok, fx_.model_dir.toStdString()),
                                                tok, an::open_corpus(fx_.corpus_dir.toStdString(), "test", std::nullopt), opt);
        QVERIFY(b.complete);
        HeatmapRequest req;
        req.run_id = run_id_;
        req.axes = HeatmapAxes::experts_by_domains;
        req.measure = HeatmapMeasure::share;
        req.layer = 1;
        const HeatmapGrid a = load_heatmap(store, req);
        req.minus_run_id = b.run_id;
        const HeatmapGrid d = load_heatmap(store, req);
        req.run_id = b.run_id;
        req.minus_run_id.reset();
        const HeatmapGrid g = load_heatmap(store, req);
        QVERIFY(d.diverging);
        QCOMPARE(d.n_rows, a.n_rows);
        for (int64_t r = 0; r < d.n_rows; ++r)
            for (int64_t e = 0; e < d.n_cols; ++e) {
                QVERIFY(d.at(r, e).present);
                QCOMPARE(d.at(r, e).value, a.at(r, e).value - g.at(r, e).value);
                if (e < 2) QCOMPARE(g.at(r, e).value, 0.0);  // switched off in the second run
            }
        QVERIFY(QString::fromStdString(d.describe(0, 0)).contains(QString("run %1").arg(b.run_id)));
        // The view asks for the difference when another run is picked.
        HeatmapView view;
        view.setRun(run_id_);
        view.setRuns({{run_id_, "first"}, {b.run_id, "masked"}});
        view.setMinusRun(b.run_id);
        QCOMPARE(view.currentRequest().minus_run_id.value_or(0), b.run_id);
        view.setMinusRun(0);
        QVERIFY(!view.currentRequest().minus_run_id);
        // The run shown is greyed out in the list of runs to compare with, and not chosen.
        auto* minus = view.findChild<QComboBox*>("heatmapMinusRun");
        auto* items = qobject_cast<QStandardItemModel*>(minus->model());
        QVERIFY(minus && items);
        QVERIFY(!items->item(minus->findData(static_cast<qlonglong>(run_id_)))->isEnabled());
        QVERIFY(items->item(minus->findData(static_cast<qlonglong>(b.run_id)))->isEnabled());
        view.setMinusRun(b.run_id);
        view.setRun(b.run_id);  // now the masked run is shown: it cannot be its own comparison
        QVERIFY(!view.currentRequest().minus_run_id);
        QVERIFY(items->item(minus->findData(static_cast<qlonglong>(run_id_)))->isEnabled());
        view.setRun(run_id_);
        // A difference that is zero in every cell says so in the title.
        HeatmapGrid same = a;  // run 1 minus itself
        same.request.minus_run_id = b.run_id;
        same.diverging = true;
        for (HeatmapCell& c : same.cells) {
            c.minus_value = c.value;
            c.value = 0.0;
        }
        view.showGrid(same);
        QVERIFY2(view.findChild<QLabel*>("heatmapTitle")->text().contains("identical to run"),
                 qPrintable(view.findChild<QLabel*>("heatmapTitle")->text()));
        view.showGrid(d);
        QVERIFY(!view.findChild<QLabel*>("heatmapTitle")->text().contains("identical to run"));

        // Side by side: both runs' grids, unchanged, one colour range over both.
        req.run_id = run_id_;
        req.beside_run_id = b.run_id;
        const HeatmapGrid sb = load_heatmap(store, req);
        QCOMPARE(sb.beside.size(), size_t(1));
        QVERIFY(!sb.diverging);
        for (int64_t r = 0; r < sb.n_rows; ++r)
            for (int64_t e = 0; e < sb.n_cols; ++e) {
                QCOMPARE(sb.at(r, e).value, a.at(r, e).value);
                QCOMPARE(sb.beside[0].at(r, e).value, g.at(r, e).value);
            }
        QCOMPARE(sb.max_value(), std::max(a.max_value(), g.max_value()));
        req.minus_run_id = b.run_id;
        QVERIFY_THROWS_EXCEPTION(moe::Error, load_heatmap(store, req));  // not both
        req.minus_run_id.reset();
        view.setMinusRun(b.run_id);
        view.setSideBySide(true);
        QCOMPARE(view.currentRequest().beside_run_id.value_or(0), b.run_id);
        QVERIFY(!view.currentRequest().minus_run_id);
        // Drawn: the second map holds the other run's cells; a hover and a click on it name
        // that run; back to one map when the comparison is cleared.
        view.resize(1000, 420);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        view.showGrid(sb);
        view.plot()->replot();
        QVERIFY(view.besideShown());
        QCPColorMap* m2 = view.besideMap();
        QCOMPARE(m2->data()->cell(0, 0), g.at(0, 0).value);
        QCOMPARE(m2->dataRange().upper, view.colorMap()->dataRange().upper);
        QCPAxisRect* r2 = m2->keyAxis()->axisRect();
        const QPoint pos(int(m2->keyAxis()->coordToPixel(1.0)), int(m2->valueAxis()->coordToPixel(0.0)));
        QVERIFY(r2->rect().contains(pos));
        QCOMPARE(view.runAt(pos).value_or(0), b.run_id);
        QCOMPARE(view.cellAt(pos)->second, int64_t(1));
        QVERIFY(view.toolTipAt(pos).startsWith(QString("run %1").arg(b.run_id)));
        QSignalSpy clicked(&view, &HeatmapView::expertClicked);
        QTest::mouseClick(view.plot(), Qt::LeftButton, {}, pos);
        QCOMPARE(clicked.size(), 1);
        QCOMPARE(clicked[0][0].toLongLong(), b.run_id);
        QCOMPARE(clicked[0][2].toLongLong(), 1LL);
        view.showGrid(a);
        QVERIFY(!view.besideShown());
        view.plot()->replot();
        // A run traced with a long mask (two experts off in each of 58 layers): the title wraps
        // it over lines at the view's width rather than cutting it off at the edge.
        HeatmapGrid masked = a;
        masked.run_label += " · mask ";
        for (int l = 3; l < 61; ++l) masked.run_label += "L" + std::to_string(l) + ":" + std::to_string(l) + ",20" + (l < 60 ? ";" : "");
        view.showGrid(masked);
        auto* title = view.findChild<QLabel*>("heatmapTitle");
        QVERIFY(title);
        const int lines = title->heightForWidth(400) / title->fontMetrics().lineSpacing();
        QVERIFY2(lines >= 5, qPrintable(QString("%1 lines at 400 px").arg(lines)));
        view.showGrid(a);
    }

    void manyLayersAreLabelledEveryFewLayers() {
        // DeepSeekMoE 16B's 27 MoE layers each get their number; V3's 58 (layers 3–60) every
        // second one, so the numbers do not stack on one another.
        HeatmapView view;
        view.resize(900, 500);
        view.setRun(7);
        for (const auto& [first, n, step] : {std::tuple{1, 27, 1}, std::tuple{3, 58, 2}}) {
            HeatmapGrid g;
            g.request.run_id = 7;
            g.request.axes = HeatmapAxes::experts_by_layers;
            g.request.domain = "english";
            g.run_label = "run 7";
            g.n_rows = n;
            g.n_cols = 4;
            for (int r = 0; r < n; ++r) {
                g.row_layers.push_back(first + r);
                g.layers.push_back(first + r);
                g.row_labels.push_back("layer " + std::to_string(first + r));
                g.row_domains.push_back("english");
            }
            g.domains = {"english"};
            g.cells.resize(static_cast<size_t>(n * 4));
            view.showGrid(g);
            auto ticker = view.colorMap()->valueAxis()->ticker().dynamicCast<QCPAxisTickerText>();
            QVERIFY(ticker);
            QStringList want;
            for (int r = 0; r < n; ++r)
                if ((first + r) % step == 0) want << QString::number(first + r);
            QCOMPARE(QStringList(ticker->ticks().values()), want);
            QVERIFY(ticker->ticks().size() <= 30);
        }
    }

    void expertLabelsNeverRunTogether() {
        // V3's 256 experts: in a narrow map the labels thin out so that each stands apart; in a
        // wide one there are up to 16 of them.
        HeatmapView view;
        view.setRun(7);
        HeatmapGrid g;
        g.request.run_id = 7;
        g.request.axes = HeatmapAxes::experts_by_domains;
        g.request.layer = 3;
        g.run_label = "run 7";
        g.n_rows = 2;
        g.n_cols = 256;
        g.row_labels = {"code", "math"};
        g.row_domains = g.row_labels;
        g.row_layers = {3, 3};
        g.domains = g.row_labels;
        g.layers = {3};
        g.cells.resize(512);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        for (const int width : {420, 700, 1600}) {
            view.resize(width, 420);
            QTest::qWait(20);
            view.showGrid(g);
            view.plot()->replot();
            QCPAxis* x = view.colorMap()->keyAxis();
            const QVector<double> ticks = x->tickVector();
            const QVector<QString> labels = x->tickVectorLabels();
            QVERIFY(ticks.size() >= 2 && ticks.size() <= 17);
            const QFontMetrics fm(x->tickLabelFont());
            for (int i = 1; i < ticks.size(); ++i) {
                const double gap = x->coordToPixel(ticks[i]) - x->coordToPixel(ticks[i - 1]);
                const double need = (fm.horizontalAdvance(labels[i - 1]) + fm.horizontalAdvance(labels[i])) / 2.0 +
                                    fm.horizontalAdvance("0");
                QVERIFY2(gap >= need, qPrintable(QString("width %1: labels %2 and %3 are %4 px apart, need %5")
                                                     .arg(width).arg(labels[i - 1], labels[i]).arg(gap).arg(need)));
            }
            if (width == 1600) QCOMPARE(x->ticker().dynamicCast<QCPAxisTickerFixed>()->tickStep(), 16.0);
        }
    }

    void cancelLeavesAnIncompleteRun() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        QSignalSpy finished(&wb, &Workbench::traceFinished);
        const size_t runs_before = wb.runs().size();
        // Cancelled at once (a different budget: a new trace): the worker sees the request at
        // its first progress report, before or after a few documents, never after the last.
        wb.startTrace({"prose"}, 0);
        wb.cancelTrace();
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 120000);
        QVERIFY(wb.waitIdle(30000));
        QVERIFY2(wb.lastTraceSummary().contains("cancelled"), qPrintable(wb.lastTraceSummary()));
        QCOMPARE(wb.runs().size(), runs_before + 1);
        QCOMPARE(wb.runs().back().status, std::string("incomplete"));
        QVERIFY(wb.runs().back().n_documents < 4);
    }

    void errorsOfAStatisticAreShownInPlace() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        HeatmapView view;
        connect(&view, &HeatmapView::requestChanged, &wb, &Workbench::requestHeatmap);
        connect(&wb, &Workbench::heatmapReady, &view, &HeatmapView::showGrid);
        connect(&wb, &Workbench::heatmapFailed, &view, &HeatmapView::showError);
        // A run of one domain has no domain-vs-rest log-ratio.
        QSignalSpy finished(&wb, &Workbench::traceFinished);
        wb.startTrace({"code"}, 50);
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 1, 120000);
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(wb.runs().back().status, std::string("complete"));
        view.setMeasure(HeatmapMeasure::log_ratio);
        view.setRun(wb.runs().back().run_id);
        QVERIFY(wb.waitIdle(30000));
        QVERIFY2(view.message().contains("at least two domains"), qPrintable(view.message()));
        // The share of the same run shows.
        view.setMeasure(HeatmapMeasure::share);
        QVERIFY(wb.waitIdle(30000));
        QVERIFY2(view.message().isEmpty(), qPrintable(view.message()));
        // Tracing no existing domain is refused with a reason, at once.
        wb.startTrace({"no-such-domain"}, 10);
        QCOMPARE(finished.size(), 2);
        QVERIFY(!finished[1][0].toBool());
        QVERIFY(!wb.traceRunning());
    }

    // A click on a cell asks for that expert's detail: its share per domain as bars, the
    // numbers of analysis/expert_stats.
    void clickingACellOpensTheExpertDetail() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        HeatmapView view;
        view.resize(900, 500);
        view.show();
        ExpertDetailView detail;
        connect(&view, &HeatmapView::requestChanged, &wb, &Workbench::requestHeatmap);
        connect(&wb, &Workbench::heatmapReady, &view, &HeatmapView::showGrid);
        connect(&view, &HeatmapView::expertClicked, &wb, &Workbench::requestExpertDetail);
        connect(&wb, &Workbench::expertDetailReady, &detail, &ExpertDetailView::showDetail);
        QVERIFY(show(wb, view, HeatmapAxes::experts_by_layers, HeatmapMeasure::share));
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        view.plot()->replot();
        const HeatmapGrid& g = *view.grid();
        const int64_t row = g.n_rows - 1, expert = 7, layer = g.row_layers[size_t(row)];
        const QPoint pos(int(view.plot()->xAxis->coordToPixel(double(expert))),
                         int(view.plot()->yAxis->coordToPixel(double(row))));
        QSignalSpy clicked(&view, &HeatmapView::expertClicked);
        QTest::mouseClick(view.plot(), Qt::LeftButton, {}, pos);
        QCOMPARE(clicked.size(), 1);
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(detail.detail().expert, expert);
        QCOMPARE(detail.detail().layer, layer);
        moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(fx_.store_path.toStdString());
        std::vector<an::ExpertShare> want;
        for (const an::ExpertShare& s : an::expert_shares(store, run_id_, layer))
            if (s.expert == expert) want.push_back(s);
        QCOMPARE(detail.detail().domains.size(), want.size());
        QCOMPARE(want.size(), size_t(2));  // code and prose
        auto* bars = qobject_cast<QCPBars*>(detail.chart()->plottable(0));
        QVERIFY(bars);
        QCOMPARE(bars->data()->size(), int(want.size()));
        for (size_t i = 0; i < want.size(); ++i) {
            QCOMPARE(bars->data()->at(int(i))->value, want[i].share);
            QCOMPARE(detail.table()->item(int(i), 0)->text(), QString::fromStdString(want[i].domain));
            QCOMPARE(detail.table()->item(int(i), 1)->text(), QString::number(want[i].count));
        }
        QVERIFY2(detail.title().contains(QString("Expert %1 of layer %2").arg(expert).arg(layer)), qPrintable(detail.title()));

        // The chart exports as a PNG that loads, at least 900 px wide.
        const QString png = fx_.tmp.filePath("expert.png");
        QVERIFY(detail.exportChart(png));
        QImage img(png);
        QVERIFY(!img.isNull() && img.width() >= 900);
        QVERIFY(!detail.exportChart(fx_.tmp.filePath("expert.tiff")));

        // Top tokens: analysis' vocabulary specialisation of that expert, at the minimum count
        // of `moewb stats --vocab`.
        QCOMPARE(detail.detail().min_count, an::kVocabMinCount);
        QCOMPARE(detail.minCountBox()->value(), int(an::kVocabMinCount));
        const an::ExpertVocabulary* vocab = nullptr;
        const std::vector<an::ExpertVocabulary> vocabs = an::vocabulary_specialisation(store, run_id_, layer, std::nullopt, 15);
        for (const an::ExpertVocabulary& v : vocabs)
            if (v.expert == expert) vocab = &v;
        QVERIFY(vocab);
        QVERIFY(!vocab->top.empty());
        QCOMPARE(detail.detail().selections, vocab->selections);
        QCOMPARE(detail.tokensTable()->rowCount(), int(vocab->top.size()));
        for (size_t i = 0; i < vocab->top.size(); ++i) {
            QCOMPARE(detail.detail().top_tokens[i].token_id, vocab->top[i].token_id);
            QCOMPARE(detail.tokensTable()->item(int(i), 1)->text(), QString::number(vocab->top[i].with_expert));
        }
        // Co-activated experts: counted here from the per-token rows, against analysis' pairs.
        std::vector<int64_t> together(64, 0);
        int64_t mine = 0;
        store.for_each_document(run_id_, {}, [&](const an::StoredDocument& doc) {
            const an::StoredLayer* l = doc.layer(layer);
            for (size_t t = 0; l && t < doc.token_ids.size(); ++t) {
                const auto first = l->experts.begin() + std::ptrdiff_t(t) * l->k, last = first + l->k;
                if (std::find(first, last, uint16_t(expert)) == last) continue;
                ++mine;
                for (auto e = first; e != last; ++e)
                    if (*e != expert) ++together[*e];
            }
            return true;
        });
        QCOMPARE(mine, vocab->selections);
        const auto& co = detail.detail().coactivated;
        QVERIFY(!co.empty());
        QCOMPARE(detail.coactivatedTable()->rowCount(), int(co.size()));
        for (size_t i = 0; i < co.size(); ++i) {
            QCOMPARE(co[i].together, together[size_t(co[i].expert)]);
            if (i > 0) QVERIFY(co[i - 1].together >= co[i].together);
            QCOMPARE(co[i].p_with, double(co[i].together) / double(mine));
        }
        // Nothing left out beats the last one shown.
        for (int64_t e = 0; e < 64; ++e)
            if (e != expert && std::none_of(co.begin(), co.end(), [&](const auto& c) { return c.expert == e; }))
                QVERIFY(together[size_t(e)] <= co.back().together);
    }

    // The statistics and per-token CSV exports (analysis/csv_exports) from the GUI's worker.
    void csvExportsWriteFilesThatParse() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        QSignalSpy done(&wb, &Workbench::exportFinished);
        const QString stats = fx_.tmp.filePath("stats.csv"), tokens = fx_.tmp.filePath("tokens.csv");
        wb.exportStatsCsv(stats, run_id_);
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 30000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        wb.exportTokensCsv(tokens, run_id_);
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 30000);
        QVERIFY2(done[1][0].toBool(), qPrintable(done[1][1].toString()));
        auto lines = [](const QString& path) {
            QFile f(path);
            if (!f.open(QIODevice::ReadOnly)) return QStringList();
            return QString::fromUtf8(f.readAll()).split("\r\n", Qt::SkipEmptyParts);  // RFC 4180 line ends
        };
        const QStringList s = lines(stats);
        QCOMPARE(s.value(0), QString(an::kStatsCsvHeader));
        const int columns = int(QString(an::kStatsCsvHeader).count(',')) + 1;
        moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(fx_.store_path.toStdString());
        QCOMPARE(s.size() - 1, int(an::expert_shares(store, run_id_).size()));
        for (const QString& line : s) QCOMPARE(int(line.count(',')) + 1, columns);
        QVERIFY(done[0][1].toString().contains(QString("(%1 rows)").arg(s.size() - 1)));
        const QStringList t = lines(tokens);
        QCOMPARE(t.value(0), QString(an::kTokensCsvHeader));
        QVERIFY(t.size() > 1);
        // No run: a refusal in place, no file.
        wb.exportTokensCsv(fx_.tmp.filePath("none.csv"), 0);
        QCOMPARE(done.size(), 3);
        QVERIFY(!done[2][0].toBool());
    }

    // The offscreen platform cannot host the inspector's OpenGL view: a placeholder says so,
    // and the document chooser still works (the GL view is tested under xvfb-run).
    void inspectorShowsAPlaceholderWithoutGl() {
        Workbench wb;
        QVERIFY(ui_test::open_all(wb, fx_));
        RoutingInspector insp(&wb);
        QVERIFY(insp.view() == nullptr);
        auto* placeholder = insp.findChild<QLabel*>("inspectorPlaceholder");
        QVERIFY(placeholder);
        QVERIFY2(placeholder->text().contains("OpenGL"), qPrintable(placeholder->text()));
        QVERIFY(run_id_ > 0);
        insp.setRun(run_id_);
        QVERIFY(wb.waitIdle(30000));
        QVERIFY(insp.documentCount() > 0);
        QVERIFY2(insp.message().isEmpty(), qPrintable(insp.message()));
    }
};

QTEST_MAIN(TestUiHeatmap)
#include "test_ui_heatmap.moc"
