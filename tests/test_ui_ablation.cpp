// The ablation panel on the offscreen platform: clicking cells of the expert grid and the
// quick actions build the expected SPEC, which ExpertMask::parse accepts; top-N is the mask
// analysis/ablation.h builds from the run's counts; a mask saved as JSON loads back; an
// evaluation on a worker thread fills the table and the Δloss chart with exactly the numbers
// run_ablation returns, can be stored, exported as `moewb ablate --csv` writes it, and can be
// cancelled (its partial scores are not exported).
#include <QAction>
#include <QApplication>
#include <QComboBox>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QTimer>
#include <QSlider>
#include <QWheelEvent>
#include <QHeaderView>
#include <QtTest>
#include <qcustomplot.h>

#include "analysis/ablation.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tests/ui_test_support.h"
#include "ui/ablation_panel.h"
#include "ui/expert_grid.h"
#include "ui/plot_export.h"
#include "ui/stored_ablations.h"

using namespace moe::ui;
namespace an = moe::analysis;

class TestUiAblation : public QObject {
    Q_OBJECT
    ui_test::Fixture fx_;
    Workbench wb_;
    AblationPanel* panel_ = nullptr;
    int64_t run_id_ = 0;

    void click(int row, int column) {
        ExpertGrid* g = panel_->grid();
        const QRect r = g->visualItemRect(g->item(row, column));
        QVERIFY(!r.isEmpty());
        QTest::mouseClick(g->viewport(), Qt::LeftButton, {}, r.center());
    }
    void press(const char* name) {
        auto* b = panel_->findChild<QPushButton*>(name);
        QVERIFY2(b, name);
        QTest::mouseClick(b, Qt::LeftButton);
    }
    const moe::ModelConfig& cfg() const { return wb_.model()->config(); }
    // The data lines of an exported CSV (CRLF records), after checking its header: the column
    // list of `moewb ablate --csv`, spelled out here as the CLI's help gives it.
    static QStringList csv_rows(const QString& path) {
        QFile f(path);
        if (!f.open(QIODevice::ReadOnly)) return {"cannot open " + path};
        QStringList lines = QString::fromUtf8(f.readAll()).split("\r\n");
        if (!lines.isEmpty() && lines.back().isEmpty()) lines.removeLast();
        if (lines.isEmpty() || lines.takeFirst() != "sweep,value,control,mask,mode,domain,tokens,baseline_loss,ablated_loss,"
                                                    "delta_loss,ppl_ratio,kl,top1_agreement")
            return {"bad header in " + path};
        return lines;
    }
    // The last eight fields of a row (domain … top1_agreement), which never hold a comma.
    static QStringList scores(const QString& row) { return row.split(',').mid(row.split(',').size() - 8); }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(fx_.ok);
        panel_ = new AblationPanel(&wb_);
        panel_->resize(900, 900);
        panel_->show();
        QVERIFY(ui_test::open_all(wb_, fx_));
        wb_.startTrace({}, 80);
        QTRY_VERIFY_WITH_TIMEOUT(!wb_.traceRunning(), 120000);
        QVERIFY(wb_.waitIdle(30000));
        run_id_ = wb_.runs().back().run_id;
    }
    void cleanupTestCase() { delete panel_; }

    void togglingExpertsBuildsTheSpec() {
        // The tiny model: MoE layers 1 and 2, 16 routed experts, 2 shared.
        QCOMPARE(panel_->maskState().layers(), (std::vector<int64_t>{1, 2}));
        QCOMPARE(panel_->grid()->columnCount(), 17);
        QCOMPARE(panel_->specText(), QString());
        click(0, ExpertGrid::columnOfExpert(3));
        click(1, ExpertGrid::columnOfExpert(5));
        click(0, 0);  // layer 1's shared experts
        QCOMPARE(panel_->specText(), QString("L1:3;L2:5;L1:shared"));
        click(0, ExpertGrid::columnOfExpert(5));
        QCOMPARE(panel_->specText(), QString("L1:3,5;L2:5;L1:shared"));
        const moe::ExpertMask m = moe::ExpertMask::parse(panel_->specText().toStdString(), cfg(), moe::MaskMode::reroute);
        QVERIFY(m.layer(1)->disabled[3] && m.layer(1)->disabled[5] && m.layer(1)->shared_off);
        QVERIFY(m.layer(2)->disabled[5] && !m.layer(2)->disabled[3] && !m.layer(2)->shared_off);
        QCOMPARE(m.layer(1)->n_disabled, int64_t(2));
        QVERIFY(panel_->currentMask().has_value());
        QVERIFY(panel_->maskError().isEmpty());
        // A cell clicked again is on again; the grid shows what is off.
        click(0, ExpertGrid::columnOfExpert(5));
        QCOMPARE(panel_->specText(), QString("L1:3;L2:5;L1:shared"));
        QVERIFY(panel_->grid()->item(0, ExpertGrid::columnOfExpert(3))->data(Qt::UserRole).toBool());
        QVERIFY(!panel_->grid()->item(0, ExpertGrid::columnOfExpert(5))->data(Qt::UserRole).toBool());
        press("sharedOff");
        QCOMPARE(panel_->specText(), QString("L1:3;L2:5;*:shared"));
        press("clearMask");
        QCOMPARE(panel_->specText(), QString());
        QVERIFY(!panel_->currentMask().has_value());
        click(0, ExpertGrid::columnOfExpert(7));
        click(1, ExpertGrid::columnOfExpert(7));
        QCOMPARE(panel_->specText(), QString("*:7"));
        // Typed SPEC: parsed by the engine, shown in the grid; a bad one is an error in place.
        panel_->setSpec("L2:0,1;*:k=2");
        QCOMPARE(panel_->specText(), QString("L2:0,1;*:k=2"));
        QVERIFY(panel_->grid()->item(1, ExpertGrid::columnOfExpert(1))->data(Qt::UserRole).toBool());
        panel_->setSpec("L0:3");  // layer 0 is dense
        QVERIFY2(panel_->maskError().contains("L0"), qPrintable(panel_->maskError()));
        QCOMPARE(panel_->maskState().spec(), std::string("L2:0,1;*:k=2"));
        press("clearMask");
        QVERIFY(panel_->maskError().isEmpty());
    }

    void theGridsCellsShrinkToShowManyExperts() {
        // The cell size slider (and Ctrl + wheel) make every cell small: DeepSeek-V3's 58 × 257
        // cells fit a screen. Small cells show colours only, no headers, and still toggle.
        ExpertGrid* g = panel_->grid();
        auto* slider = panel_->findChild<QSlider*>("gridCellSize");
        QVERIFY(slider);
        QCOMPARE(g->cellSize(), int(ExpertGrid::kMaxCell));
        QVERIFY(g->horizontalHeader()->isVisible());
        const int wide = g->horizontalHeader()->length();
        slider->setValue(6);
        QCOMPARE(g->cellSize(), 6);
        QCOMPARE(g->columnWidth(ExpertGrid::columnOfExpert(9)), 6);
        QCOMPARE(g->rowHeight(1), 6);
        QCOMPARE(g->horizontalHeader()->length(), 6 * g->columnCount());
        QVERIFY(g->horizontalHeader()->length() < wide);
        QVERIFY(!g->horizontalHeader()->isVisible() && !g->verticalHeader()->isVisible());
        click(1, ExpertGrid::columnOfExpert(9));
        QCOMPARE(panel_->specText(), QString("L2:9"));
        QTableWidgetItem* cell = g->item(1, ExpertGrid::columnOfExpert(9));
        QVERIFY(cell->data(Qt::UserRole).toBool());
        QCOMPARE(cell->text(), QString());  // no room for ×
        QVERIFY(cell->toolTip().contains("expert 9"));
        // Ctrl + wheel: a step larger; the slider follows.
        const QPoint at = g->visualItemRect(cell).center();
        QWheelEvent up(QPointF(at), QPointF(g->viewport()->mapToGlobal(at)), QPoint(), QPoint(0, 120), Qt::NoButton,
                       Qt::ControlModifier, Qt::NoScrollPhase, false);
        QApplication::sendEvent(g->viewport(), &up);
        QCOMPARE(g->cellSize(), 9);
        QCOMPARE(slider->value(), 9);
        // Back to full size: headers and × again.
        slider->setValue(ExpertGrid::kMaxCell);
        QVERIFY(g->horizontalHeader()->isVisible());
        QCOMPARE(g->horizontalHeader()->length(), wide);
        QCOMPARE(cell->text(), QString("×"));
        press("clearMask");
        QCOMPARE(panel_->specText(), QString());
    }

    void quickActionsUseTheRunsCounts() {
        panel_->setRun(run_id_);
        panel_->findChild<QSpinBox*>("quickN")->setValue(3);
        press("topN");
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const auto sel = an::expert_selections(store, run_id_, cfg());
        const double f = 3.0 / 16.0;
        const auto expected = an::routed_sweep(cfg(), sel, run_id_, std::span(&f, 1), {}, 0, moe::MaskMode::reroute);
        const std::string want = MaskState::from_mask(expected[0].mask, cfg()).spec();
        QTRY_COMPARE_WITH_TIMEOUT(panel_->specText(), QString::fromStdString(want), 10000);
        QCOMPARE(panel_->maskState().n_experts_off(), int64_t(6));
        press("bottomN");
        const std::vector<std::string> least{"least-routed"};
        const auto bottom = an::routed_sweep(cfg(), sel, run_id_, std::span(&f, 1), least, 0, moe::MaskMode::reroute);
        QTRY_COMPARE_WITH_TIMEOUT(panel_->specText(), QString::fromStdString(MaskState::from_mask(bottom[1].mask, cfg()).spec()),
                                  10000);
        press("randomN");
        QTRY_VERIFY_WITH_TIMEOUT(panel_->statusText().contains("random"), 10000);
        QCOMPARE(panel_->maskState().n_experts_off(), int64_t(6));
        // Too many for reroute (16 − 14 < k = 4): the analysis error, in place.
        panel_->findChild<QSpinBox*>("quickN")->setValue(14);
        press("randomN");
        QTRY_VERIFY_WITH_TIMEOUT(!panel_->maskError().isEmpty(), 10000);
        press("clearMask");
    }

    void maskRoundTripsThroughJson() {
        panel_->setSpec("L1:2,9;L2:shared");
        const QString path = fx_.tmp.filePath("mask.json");
        QVERIFY(panel_->saveMask(path));
        press("clearMask");
        QVERIFY(panel_->loadMask(path));
        QCOMPARE(panel_->specText(), QString("L1:2,9;L2:shared"));
        QFile bad(fx_.tmp.filePath("bad.json"));
        QVERIFY(bad.open(QIODevice::WriteOnly));
        bad.write("{\"spec\": \"L1:99\"}");
        bad.close();
        QVERIFY(!panel_->loadMask(bad.fileName()));
        QVERIFY2(panel_->maskError().contains("bad.json"), qPrintable(panel_->maskError()));
        QCOMPARE(panel_->specText(), QString("L1:2,9;L2:shared"));
    }

    void evaluationFillsTheTable() {
        // Nothing to export before an evaluation.
        QVERIFY(!panel_->findChild<QPushButton*>("exportAblationCsv")->isEnabled());
        QVERIFY(!panel_->exportCsv(fx_.tmp.filePath("none.csv")));
        QVERIFY(!QFile::exists(fx_.tmp.filePath("none.csv")));
        panel_->setSpec("L1:3,5;*:shared");
        panel_->setTokenBudget(60);
        panel_->setDomainsChecked({"code", "prose"});
        panel_->findChild<QCheckBox*>("ablationStore")->setChecked(true);
        QSignalSpy done(panel_->jobs(), &AblationJobs::finished);
        press("evaluate");
        QVERIFY(panel_->jobs()->running());
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 120000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));

        // The same evaluation, called directly.
        an::AblationCondition c;
        c.mask = moe::ExpertMask::parse("L1:3,5;*:shared", cfg(), moe::MaskMode::reroute);
        an::AblationOptions opt;
        opt.max_tokens = 60;
        const an::AblationResult r = an::run_ablation(*wb_.model(), *wb_.tokenizer(), wb_.corpus()->corpus, std::span(&c, 1), opt);
        const auto& domains = r.conditions[0].domains;
        QTableWidget* t = panel_->resultsTable();
        QCOMPARE(t->rowCount(), static_cast<int>(domains.size()) + 1);
        for (int i = 0; i < static_cast<int>(domains.size()); ++i) {
            const an::AblationScore& s = domains[static_cast<size_t>(i)];
            QCOMPARE(t->item(i, 0)->text(), QString::fromStdString(s.domain));
            QCOMPARE(t->item(i, 1)->text(), QString::number(s.delta_loss(), 'f', 4));
            QCOMPARE(t->item(i, 2)->text(), QString::number(s.ppl_ratio(), 'f', 4));
            QCOMPARE(t->item(i, 3)->text(), QString::number(s.mean_kl(), 'f', 4));
            QCOMPARE(t->item(i, 4)->text(), QString::number(100.0 * s.top1_agreement(), 'f', 1) + " %");
            QCOMPARE(t->item(i, 5)->text(), QString::number(s.baseline_loss(), 'f', 4));
            QCOMPARE(t->item(i, 6)->text(), QString::number(s.ablated_loss(), 'f', 4));
            QCOMPARE(t->item(i, 7)->text(), QString::number(s.tokens));
        }
        QCOMPARE(t->item(t->rowCount() - 1, 0)->text(), QString("all"));
        QCOMPARE(t->item(t->rowCount() - 1, 7)->text(), QString::number(r.conditions[0].all.tokens));
        // The chart: one bar per domain, its height the domain's Δloss.
        auto* bars = qobject_cast<QCPBars*>(panel_->chart()->plottable(0));
        QVERIFY(bars);
        QCOMPARE(bars->data()->size(), static_cast<int>(domains.size()));
        for (int i = 0; i < static_cast<int>(domains.size()); ++i)
            QCOMPARE(bars->data()->at(i)->value, domains[static_cast<size_t>(i)].delta_loss());
        // Stored as `moewb ablate --db` stores it.
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const auto stored = an::read_ablations(store);
        QCOMPARE(stored.size(), size_t(1));
        QCOMPARE(stored[0].mask_spec, std::string("L1:3,5;*:shared"));
        QVERIFY(panel_->statusText().contains("stored as ablation"));
        // File ▸ Export stored ablations CSV: what `moewb export --ablations` writes.
        {
            QSignalSpy exported(&wb_, &Workbench::exportFinished);
            const QString kept = fx_.tmp.filePath("kept.csv");
            wb_.exportAblationsCsv(kept);
            QVERIFY(wb_.waitIdle(30000));
            QCOMPARE(exported.size(), 1);
            QVERIFY2(exported[0][0].toBool(), qPrintable(exported[0][1].toString()));
            QFile f(kept);
            QVERIFY(f.open(QIODevice::ReadOnly));
            const QStringList lines = QString::fromUtf8(f.readAll()).split("\r\n", Qt::SkipEmptyParts);
            QCOMPARE(lines.size(), 1 + static_cast<int>(domains.size()) + 1);
            QVERIFY(lines[0].startsWith("ablation_id,model,corpus,"));
            QVERIFY2(lines[1].startsWith(QString::number(stored[0].ablation_id) + ",") &&
                         lines[1].contains(",\"L1:3,5;*:shared\",reroute," + QString::fromStdString(domains[0].domain) + ","),
                     qPrintable(lines[1]));
        }
        // The scores export as `moewb ablate --csv` writes them: a row per domain, then "all".
        QVERIFY(panel_->findChild<QPushButton*>("exportAblationCsv")->isEnabled());
        const QString csv = fx_.tmp.filePath("evaluation.csv");
        QVERIFY(panel_->exportCsv(csv));
        const QStringList rows = csv_rows(csv);
        QCOMPARE(rows.size(), static_cast<int>(domains.size()) + 1);
        for (int i = 0; i <= static_cast<int>(domains.size()); ++i) {
            const an::AblationScore& s = i < static_cast<int>(domains.size()) ? domains[static_cast<size_t>(i)] : r.conditions[0].all;
            QVERIFY2(rows[i].startsWith(",,,\"L1:3,5;*:shared\",reroute,"), qPrintable(rows[i]));
            const QStringList f = scores(rows[i]);
            QCOMPARE(f[0], QString::fromStdString(s.domain));
            QCOMPARE(f[1].toLongLong(), s.tokens);
            QCOMPARE(f[2].toDouble(), s.baseline_loss());
            QCOMPARE(f[3].toDouble(), s.ablated_loss());
            QCOMPARE(f[4].toDouble(), s.delta_loss());
            QCOMPARE(f[5].toDouble(), s.ppl_ratio());
            QCOMPARE(f[6].toDouble(), s.mean_kl());
            QCOMPARE(f[7].toDouble(), s.top1_agreement());
        }
        QVERIFY2(panel_->statusText().contains("3 rows written"), qPrintable(panel_->statusText()));
        // A place that cannot be written is said so, and leaves no file.
        QVERIFY(!panel_->exportCsv(fx_.tmp.filePath("no-such-dir/evaluation.csv")));
        QVERIFY2(panel_->statusText().contains("Could not write the scores"), qPrintable(panel_->statusText()));
        QVERIFY(!QFileInfo::exists(fx_.tmp.filePath("no-such-dir")));
    }

    void crowdedCategoryNamesAreSlanted() {
        // The Δloss chart's domain names (add_category_bars): slanted in a narrow chart, where
        // side by side they would run into each other; level in a wide one.
        QCustomPlot plot;
        add_category_bars(&plot, Qt::red);
        auto ticks = QSharedPointer<QCPAxisTickerText>::create();
        const QStringList names{"english", "chinese", "french", "math", "code", "gsm8k"};
        for (int i = 0; i < names.size(); ++i) ticks->addTick(i, names[i]);
        plot.xAxis->setTicker(ticks);
        plot.xAxis->setRange(-0.6, names.size() - 0.4);
        plot.resize(240, 200);
        plot.show();
        QVERIFY(QTest::qWaitForWindowExposed(&plot));
        plot.replot();
        QTRY_VERIFY(plot.xAxis->tickLabelRotation() != 0.0);
        plot.resize(1200, 200);
        plot.replot();
        QTRY_COMPARE(plot.xAxis->tickLabelRotation(), 0.0);
    }

    void storedAblationsAreListedAndTheirMaskUsed() {
        // The window of stored ablations shows analysis::read_ablations: newest first, the
        // scores over all domains, the selected one per domain; its mask goes back to the panel.
        StoredAblationsView view;
        connect(&wb_, &Workbench::storedAblationsReady, &view, &StoredAblationsView::showAblations);
        connect(&view, &StoredAblationsView::useMaskRequested, panel_, &AblationPanel::useMask);
        wb_.requestStoredAblations();
        QVERIFY(wb_.waitIdle(30000));
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const auto stored = an::read_ablations(store);
        QVERIFY(!stored.empty());
        QCOMPARE(view.table()->rowCount(), static_cast<int>(stored.size()));
        const an::StoredAblation& newest = stored.back();
        QCOMPARE(view.table()->item(0, 0)->text(), QString::number(newest.ablation_id));
        QCOMPARE(view.table()->item(0, 1)->text(), QString::fromStdString(newest.mask_spec));
        QCOMPARE(view.table()->item(0, 4)->text(), QString::number(newest.all().delta_loss(), 'f', 4));
        QCOMPARE(view.table()->item(0, 10)->text(), QString::number(newest.all().tokens));
        QCOMPARE(view.table()->item(0, 15)->text(), QString::fromStdString(newest.source + ", " + newest.dtype));
        QCOMPARE(view.table()->item(0, 16)->text(),
                 QString("%1 in steps of %2").arg(newest.context).arg(newest.step_tokens));
        QCOMPARE(view.selectedAblation(), newest.ablation_id);
        QCOMPARE(view.domainsTable()->rowCount(), static_cast<int>(newest.domains.size()) + 1);
        for (int i = 0; i < static_cast<int>(newest.domains.size()); ++i) {
            QCOMPARE(view.domainsTable()->item(i, 0)->text(), QString::fromStdString(newest.domains[size_t(i)].domain));
            QCOMPARE(view.domainsTable()->item(i, 1)->text(), QString::number(newest.domains[size_t(i)].delta_loss(), 'f', 4));
        }
        QCOMPARE(view.domainsTable()->item(view.domainsTable()->rowCount() - 1, 0)->text(), QString("all"));
        // "Use this mask": the panel takes the SPEC and the mode.
        auto* mode = panel_->findChild<QComboBox*>("maskMode");
        mode->setCurrentIndex(mode->findData(static_cast<int>(moe::MaskMode::drop)));
        panel_->setSpec("L2:1");
        QTest::mouseClick(view.findChild<QPushButton*>("useStoredMask"), Qt::LeftButton);
        QCOMPARE(panel_->maskState().spec(), moe::ExpertMask::parse(newest.mask_spec, cfg(), moe::MaskMode::reroute).spec());
        QCOMPARE(mode->currentData().toInt(), static_cast<int>(moe::parse_mask_mode(newest.mask_mode)));
        QCOMPARE(panel_->maskError(), QString());
        // A store without ablations says so.
        view.showAblations({});
        QVERIFY2(view.message().contains("No ablation is kept"), qPrintable(view.message()));
        QVERIFY(!view.findChild<QPushButton*>("useStoredMask")->isEnabled());
    }

    void topRoutedSweepIsPlotted() {
        // The sweep of the run, in the panel, equals `routed_sweep` + `run_ablation` called
        // directly: one table row per condition, one line per kind of condition.
        panel_->setRun(run_id_);
        panel_->setTokenBudget(40);
        panel_->setDomainsChecked({"code", "prose"});
        panel_->findChild<QCheckBox*>("ablationStore")->setChecked(false);
        panel_->setSweepFractions("0.125,0.25");
        QSignalSpy done(panel_->jobs(), &AblationJobs::finished);
        press("sweep");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 120000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));

        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const auto sel = an::expert_selections(store, run_id_, cfg());
        const std::vector<double> f{0.125, 0.25};
        const std::vector<std::string> controls{"least-routed", "random"};
        const int seed = panel_->findChild<QSpinBox*>("quickSeed") ? panel_->findChild<QSpinBox*>("quickSeed")->value() : 0;
        const auto conds = an::routed_sweep(cfg(), sel, run_id_, f, controls, static_cast<uint64_t>(seed), moe::MaskMode::reroute);
        an::Corpus corpus = wb_.corpus()->corpus;
        std::erase_if(corpus.domains, [](const an::CorpusDomain& d) { return d.name != "code" && d.name != "prose"; });
        an::AblationOptions opt;
        opt.max_tokens = 40;
        const an::AblationResult r = an::run_ablation(*wb_.model(), *wb_.tokenizer(), corpus, conds, opt);
        QTableWidget* t = panel_->resultsTable();
        QCOMPARE(t->rowCount(), 6);
        for (int i = 0; i < 6; ++i) {
            QCOMPARE(t->item(i, 0)->toolTip(), QString::fromStdString(conds[static_cast<size_t>(i)].mask.spec()));
            QCOMPARE(t->item(i, 1)->text(), QString::number(r.conditions[static_cast<size_t>(i)].all.delta_loss(), 'f', 4));
        }
        QCustomPlot* plot = panel_->sweepChart();
        QVERIFY(plot->isVisibleTo(panel_));
        QCOMPARE(plot->graphCount(), 3);
        for (int g = 0; g < 3; ++g) QCOMPARE(plot->graph(g)->data()->size(), 2);
        // The plot shown exports; an unknown suffix is refused.
        const QString svg = fx_.tmp.filePath("sweep.svg");
        QVERIFY(panel_->exportChart(svg));
        QFile sf(svg);
        QVERIFY(sf.open(QIODevice::ReadOnly));
        QVERIFY(sf.readAll().contains("<svg"));
        QVERIFY(panel_->exportChart(fx_.tmp.filePath("sweep.png")));
        QVERIFY(!panel_->exportChart(fx_.tmp.filePath("sweep.bmpx")));
        // The CSV holds every domain of every condition, which the table sums up as "all".
        const QString csv = fx_.tmp.filePath("sweep.csv");
        QVERIFY(panel_->exportCsv(csv));
        const QStringList rows = csv_rows(csv);
        QCOMPARE(rows.size(), 6 * 3);
        for (int i = 0; i < 6; ++i) {
            const an::AblationConditionResult& c = r.conditions[static_cast<size_t>(i)];
            for (int d = 0; d < 3; ++d) {
                const QString& row = rows[3 * i + d];
                const an::AblationScore& s = d < 2 ? c.domains[static_cast<size_t>(d)] : c.all;
                QVERIFY2(row.startsWith(QString("top-routed,%1,%2,").arg(f[static_cast<size_t>(i / 3)]).arg(
                             QString::fromStdString(c.condition.control))),
                         qPrintable(row));
                QCOMPARE(scores(row)[0], QString::fromStdString(s.domain));
                QCOMPARE(scores(row)[4].toDouble(), s.delta_loss());
            }
        }
        // A bad fraction is refused in place.
        panel_->setSweepFractions("0.1,2");
        press("sweep");
        QVERIFY2(panel_->statusText().contains("'2'"), qPrintable(panel_->statusText()));
    }

    void evaluationCanBeCancelled() {
        panel_->findChild<QCheckBox*>("ablationStore")->setChecked(false);
        panel_->setTokenBudget(0);
        QSignalSpy done(panel_->jobs(), &AblationJobs::finished);
        press("evaluate");
        panel_->jobs()->cancel();  // before the worker's first forward step ends
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 120000);
        QVERIFY(panel_->jobs()->result()->stopped);
        QVERIFY2(panel_->statusText().contains("cancelled"), qPrintable(panel_->statusText()));
        QVERIFY(panel_->findChild<QPushButton*>("evaluate")->isEnabled());
        // A cancelled run's partial scores are shown but not exported.
        QVERIFY(!panel_->findChild<QPushButton*>("exportAblationCsv")->isEnabled());
        QVERIFY(!panel_->exportCsv(fx_.tmp.filePath("after-cancel.csv")));
        QVERIFY(!QFile::exists(fx_.tmp.filePath("after-cancel.csv")));
    }

    void aModelWithoutWeightsTakesMasksNotEvaluations() {
        // Config and tokenizer only (a model served elsewhere, its routing captured): masks are
        // typed, toggled and picked from a run's counts; evaluating is off, saying why.
        QTemporaryDir dir;
        for (const char* f : {"config.json", "tokenizer.json"})
            QVERIFY(QFile::copy(fx_.model_dir + "/" + f, dir.filePath(f)));
        QSignalSpy opened(&wb_, &Workbench::modelOpened);
        wb_.openModel(dir.path());
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 60000);
        QVERIFY(!wb_.hasModel() && wb_.hasModelConfig());
        QVERIFY2(panel_->statusText().contains("no weights"), qPrintable(panel_->statusText()));
        panel_->setSpec("L2:0,1");
        QVERIFY2(panel_->maskError().isEmpty(), qPrintable(panel_->maskError()));
        QVERIFY(panel_->currentMask().has_value());
        panel_->setRun(run_id_);
        panel_->findChild<QSpinBox*>("quickN")->setValue(3);
        press("topN");
        QTRY_COMPARE_WITH_TIMEOUT(panel_->maskState().n_experts_off(), int64_t(6), 10000);
        for (const char* name : {"evaluate", "sweep"}) {
            auto* b = panel_->findChild<QPushButton*>(name);
            QVERIFY2(b, name);
            QVERIFY(!b->isEnabled());
            QVERIFY2(b->toolTip().contains("no weights"), qPrintable(b->toolTip()));
        }
        // The model with its weights again: evaluation is back.
        wb_.openModel(fx_.model_dir);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 2, 60000);
        QVERIFY(wb_.waitIdle(30000));
        QVERIFY(panel_->findChild<QPushButton*>("evaluate")->isEnabled());
        QVERIFY(panel_->findChild<QPushButton*>("sweep")->isEnabled());
    }

    void aStoredSweepIsPlotted() {
        // A sweep kept in the store: selecting one of its conditions plots the whole sweep (a
        // line per kind, Δloss as stored); a single mask shows no plot.
        panel_->setRun(run_id_);
        panel_->setTokenBudget(30);
        panel_->setDomainsChecked({"code", "prose"});
        panel_->findChild<QCheckBox*>("ablationStore")->setChecked(true);
        panel_->setSweepFractions("0.125,0.25");
        QSignalSpy done(panel_->jobs(), &AblationJobs::finished);
        press("sweep");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 120000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        QVERIFY(wb_.waitIdle(30000));
        StoredAblationsView view;
        connect(&wb_, &Workbench::storedAblationsReady, &view, &StoredAblationsView::showAblations);
        wb_.requestStoredAblations();
        QVERIFY(wb_.waitIdle(30000));
        std::vector<an::StoredAblation> stored;
        {
            an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
            stored = an::read_ablations(store);
        }
        QVERIFY(stored.size() >= 6);
        const an::StoredAblation& last = stored.back();  // the sweep's last condition
        QCOMPARE(last.sweep, std::string("top-routed"));
        view.selectAblation(last.ablation_id);
        QCustomPlot* plot = view.sweepPlot();
        QVERIFY(plot->isVisibleTo(&view));
        QCOMPARE(plot->graphCount(), 3);
        for (int g = 0; g < 3; ++g) {
            QCOMPARE(plot->graph(g)->data()->size(), 2);
            const std::string line = plot->graph(g)->name().toStdString();
            for (const an::StoredAblation& a : std::vector<an::StoredAblation>(stored.end() - 6, stored.end())) {
                const std::string kind = a.control.empty() ? "most routed" : a.control;
                if (kind != line) continue;
                const auto it = plot->graph(g)->data()->findBegin(*a.value, false);
                QCOMPARE(it->key, *a.value);
                QCOMPARE(it->value, a.all().delta_loss());
            }
        }
        for (const an::StoredAblation& a : stored)
            if (a.sweep.empty()) {
                view.selectAblation(a.ablation_id);
                QVERIFY(!plot->isVisibleTo(&view));
                break;
            }
    }

    void aStoredAblationIsDeletedAfterConfirmation() {
        // Last: it takes an ablation out of the shared store. The Delete key asks first (Cancel
        // keeps it); "Delete" takes it and its scores out, the list is read again without it.
        StoredAblationsView view;
        connect(&wb_, &Workbench::storedAblationsReady, &view, &StoredAblationsView::showAblations);
        connect(&view, &StoredAblationsView::deleteRequested, &wb_, &Workbench::deleteAblation);
        QSignalSpy deleted(&wb_, &Workbench::ablationDeleted);
        connect(&wb_, &Workbench::ablationDeleted, &wb_, &Workbench::requestStoredAblations);
        // One more kept in the store, the one to delete.
        panel_->setSpec("L1:2");
        panel_->setTokenBudget(20);
        panel_->setDomainsChecked({"code"});
        panel_->findChild<QCheckBox*>("ablationStore")->setChecked(true);
        QSignalSpy done(panel_->jobs(), &AblationJobs::finished);
        press("evaluate");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 120000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        QVERIFY(wb_.waitIdle(30000));
        wb_.requestStoredAblations();
        QVERIFY(wb_.waitIdle(30000));
        std::vector<an::StoredAblation> before;
        {
            an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
            before = an::read_ablations(store);
        }
        QVERIFY(!before.empty());
        const int64_t victim = before.back().ablation_id;  // the newest, just kept
        QCOMPARE(before.back().mask_spec, std::string("L1:2"));
        auto answer = [](QMessageBox::StandardButton which) {
            QTimer::singleShot(0, [which] {
                auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
                if (box && box->objectName() == "confirmDeleteAblation") box->button(which)->click();
            });
        };
        auto* del = view.findChild<QAction*>("deleteStoredAblationAction");
        QVERIFY(del);
        view.selectAblation(victim);
        QVERIFY(view.findChild<QPushButton*>("deleteStoredAblation")->isEnabled());
        answer(QMessageBox::Cancel);
        del->trigger();
        QVERIFY(wb_.waitIdle(30000));
        QCOMPARE(deleted.size(), 0);
        QCOMPARE(view.table()->rowCount(), static_cast<int>(before.size()));
        view.selectAblation(victim);
        answer(QMessageBox::Yes);
        del->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(deleted.size(), 1, 30000);
        QVERIFY2(deleted[0][0].toBool(), qPrintable(deleted[0][1].toString()));
        QVERIFY(wb_.waitIdle(30000));
        QCOMPARE(view.table()->rowCount(), static_cast<int>(before.size()) - 1);
        for (int r = 0; r < view.table()->rowCount(); ++r) QVERIFY(view.table()->item(r, 0)->text() != QString::number(victim));
        {
            an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
            const auto after = an::read_ablations(store);
            QCOMPARE(after.size(), before.size() - 1);
            for (const an::StoredAblation& a : after) QVERIFY(a.ablation_id != victim);
            QVERIFY(store.check_integrity().empty());
        }
        // Deleting it again fails, saying so; the list stays.
        wb_.deleteAblation(victim);
        QTRY_COMPARE_WITH_TIMEOUT(deleted.size(), 2, 30000);
        QVERIFY(!deleted[1][0].toBool());
        QVERIFY2(deleted[1][1].toString().contains(QString("no ablation %1").arg(victim)), qPrintable(deleted[1][1].toString()));
    }
};

QTEST_MAIN(TestUiAblation)
#include "test_ui_ablation.moc"
