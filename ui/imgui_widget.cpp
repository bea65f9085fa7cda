// ImGuiWidget; see imgui_widget.h. Pitfalls handled here (../shared/notes/qt-imgui-qcustomplot.md):
// mouse tracking on, or moves never arrive; the widget's ImGuiContext made current in every
// handler (CreateContext does not switch when one exists); io.DeltaTime > 0; no imgui.ini;
// the framebuffer object and ImGui's renderer made and destroyed with the widget's context
// current.
#include "ui/imgui_widget.h"

#include <atomic>

#include <imgui.h>
#include <backends/imgui_impl_opengl3.h>

#include <QFile>
#include <QGuiApplication>
#include <QKeyEvent>
#include <QOffscreenSurface>
#include <QOpenGLContext>
#include <QOpenGLFramebufferObject>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <cfloat>

namespace moe::ui {

namespace {

// ImGui 1.86 reads keys from io.KeysDown[512] through io.KeyMap: every ImGuiKey used is
// mapped to its own index, and Qt's key codes to those.
int imgui_key(int qt_key) {
    switch (qt_key) {
    case Qt::Key_Tab: return ImGuiKey_Tab;
    case Qt::Key_Left: return ImGuiKey_LeftArrow;
    case Qt::Key_Right: return ImGuiKey_RightArrow;
    case Qt::Key_Up: return ImGuiKey_UpArrow;
    case Qt::Key_Down: return ImGuiKey_DownArrow;
    case Qt::Key_PageUp: return ImGuiKey_PageUp;
    case Qt::Key_PageDown: return ImGuiKey_PageDown;
    case Qt::Key_Home: return ImGuiKey_Home;
    case Qt::Key_End: return ImGuiKey_End;
    case Qt::Key_Insert: return ImGuiKey_Insert;
    case Qt::Key_Delete: return ImGuiKey_Delete;
    case Qt::Key_Backspace: return ImGuiKey_Backspace;
    case Qt::Key_Space: return ImGuiKey_Space;
    case Qt::Key_Return: return ImGuiKey_Enter;
    case Qt::Key_Enter: return ImGuiKey_KeyPadEnter;
    case Qt::Key_Escape: return ImGuiKey_Escape;
    case Qt::Key_A: return ImGuiKey_A;
    case Qt::Key_C: return ImGuiKey_C;
    case Qt::Key_V: return ImGuiKey_V;
    case Qt::Key_X: return ImGuiKey_X;
    case Qt::Key_Y: return ImGuiKey_Y;
    case Qt::Key_Z: return ImGuiKey_Z;
    default: return -1;
    }
}

int imgui_button(Qt::MouseButton b) {
    switch (b) {
    case Qt::LeftButton: return 0;
    case Qt::RightButton: return 1;
    case Qt::MiddleButton: return 2;
    default: return -1;
    }
}

// Glyphs beyond ImGui's built-in ASCII font: Latin, Greek, Cyrillic, and the symbols the
// inspector shows for whitespace tokens (⏎ ⇥ ␍ ∅).
const ImWchar kGlyphRanges[] = {0x0020, 0x024F, 0x0370, 0x03FF, 0x0400, 0x04FF, 0x2000, 0x206F, 0x2190, 0x21FF,
                                0x2200, 0x22FF, 0x2300, 0x23FF, 0x2400, 0x243F, 0x2580, 0x259F, 0};
const char* kBaseFont = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
constexpr float kFontSize = 13.0f;

bool in_base_ranges(char32_t c) {
    for (int i = 0; kGlyphRanges[i]; i += 2)
        if (c >= kGlyphRanges[i] && c <= kGlyphRanges[i + 1]) return true;
    return false;
}

}  // namespace

ImGuiWidget::ImGuiWidget(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setAttribute(Qt::WA_OpaquePaintEvent);  // the frame covers every pixel
    ImGuiContext* previous = ImGui::GetCurrentContext();
    ctx_ = ImGui::CreateContext();
    ImGui::SetCurrentContext(ctx_);
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;
    io.LogFilename = nullptr;
    for (int k = 0; k < ImGuiKey_COUNT; ++k) io.KeyMap[k] = k;
    buildFonts();
    ImGui::StyleColorsDark();
    ImGui::GetStyle().WindowRounding = 0;
    ImGui::GetStyle().WindowBorderSize = 0;
    if (previous) ImGui::SetCurrentContext(previous);
    clock_.start();
}

ImGuiWidget::~ImGuiWidget() {
    if (gl_ && gl_->makeCurrent(surface_.get())) {
        shutdownRenderer();
        fbo_.reset();
        gl_->doneCurrent();
    }
    ImGui::DestroyContext(ctx_);
}

bool ImGuiWidget::glAvailable() {
    const QString p = QGuiApplication::platformName();
    return p != "offscreen" && p != "minimal";
}

void ImGuiWidget::makeImGuiCurrent() const { ImGui::SetCurrentContext(ctx_); }

QString ImGuiWidget::extraFontPath() {
    // Debian's CJK fonts, smallest first: fonts-wqy-microhei (installed by tools/install-deps.sh),
    // fonts-wqy-zenhei, fonts-noto-cjk, fonts-droid-fallback.
    for (const char* f : {"/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
                          "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                          "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"})
        if (QFile::exists(f)) return f;
    return {};
}

// The atlas: the base font, and the extra characters merged into it from the CJK font.
void ImGuiWidget::buildFonts() {
    ImFontAtlas* atlas = ImGui::GetIO().Fonts;
    atlas->Clear();
    if (QFile::exists(kBaseFont)) atlas->AddFontFromFileTTF(kBaseFont, kFontSize, nullptr, kGlyphRanges);
    else atlas->AddFontDefault();
    const QString extra = extraFontPath();
    extra_ranges_.clear();
    if (!extra.isEmpty() && !extra_chars_.isEmpty()) {
        QList<char32_t> chars(extra_chars_.begin(), extra_chars_.end());
        std::sort(chars.begin(), chars.end());
        for (char32_t c : chars) {  // runs of consecutive characters as [first, last] pairs
            if (!extra_ranges_.isEmpty() && extra_ranges_.back() + 1 == static_cast<ImWchar>(c)) extra_ranges_.back() = static_cast<ImWchar>(c);
            else extra_ranges_ << static_cast<ImWchar>(c) << static_cast<ImWchar>(c);
        }
        extra_ranges_ << 0;
        ImFontConfig cfg;
        cfg.MergeMode = true;
        cfg.OversampleH = 1;  // small atlas: thousands of CJK glyphs at one size
        atlas->AddFontFromFileTTF(extra.toUtf8().constData(), kFontSize, &cfg, extra_ranges_.data());
    }
    atlas->Build();
}

void ImGuiWidget::addGlyphs(const QString& text) {
    bool added = false;
    for (char32_t c : text.toUcs4()) {
        if (c < 0x20 || c > 0xFFFF || in_base_ranges(c) || extra_chars_.contains(c)) continue;
        if (extra_chars_.size() >= kMaxExtraGlyphs) break;
        extra_chars_.insert(c);
        added = true;
    }
    if (added) {
        fonts_dirty_ = true;
        requestFrames();
    }
}

bool ImGuiWidget::hasGlyph(char32_t c) const {
    ImGuiContext* previous = ImGui::GetCurrentContext();
    ImGui::SetCurrentContext(ctx_);
    const ImFont* font = ImGui::GetIO().Fonts->Fonts.empty() ? nullptr : ImGui::GetIO().Fonts->Fonts[0];
    const bool has = font && c <= 0xFFFF && font->FindGlyphNoFallback(static_cast<ImWchar>(c)) != nullptr;
    ImGui::SetCurrentContext(previous);
    return has;
}

void ImGuiWidget::requestFrames(int n) {
    pending_frames_ = std::max(pending_frames_, n);
    dirty_ = true;
    update();
}

namespace {
std::atomic<int> g_contexts_initialised{0};
}

int ImGuiWidget::contextsInitialised() { return g_contexts_initialised.load(); }

bool ImGuiWidget::initializeGL() {
    if (gl_) return true;
    if (!gl_failure_.isEmpty()) return false;
    auto gl = std::make_unique<QOpenGLContext>();
    gl->setFormat(QSurfaceFormat::defaultFormat());
    if (!gl->create()) {
        gl_failure_ = tr("no OpenGL context could be made on this display");
        return false;
    }
    auto surface = std::make_unique<QOffscreenSurface>();
    surface->setFormat(gl->format());
    surface->create();
    if (!surface->isValid() || !gl->makeCurrent(surface.get())) {
        gl_failure_ = tr("no offscreen surface for OpenGL on this display");
        return false;
    }
    gl_ = std::move(gl);
    surface_ = std::move(surface);
    ++g_contexts_initialised;
    initializeOpenGLFunctions();
    makeImGuiCurrent();
    ImGui_ImplOpenGL3_Init(nullptr);
    renderer_ready_ = true;
    device_objects_ = false;
    return true;
}

void ImGuiWidget::shutdownRenderer() {
    if (!renderer_ready_) return;
    makeImGuiCurrent();
    ImGui_ImplOpenGL3_Shutdown();
    renderer_ready_ = false;
}

void ImGuiWidget::drawFrame() {
    if (!initializeGL() || !gl_->makeCurrent(surface_.get())) return;
    const qreal dpr = devicePixelRatioF();
    const QSize pixels(std::max(1, qRound(width() * dpr)), std::max(1, qRound(height() * dpr)));
    if (!fbo_ || fbo_->size() != pixels) {
        fbo_.reset();
        fbo_ = std::make_unique<QOpenGLFramebufferObject>(pixels);
    }
    fbo_->bind();
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2(static_cast<float>(width()), static_cast<float>(height()));
    io.DisplayFramebufferScale = ImVec2(static_cast<float>(dpr), static_cast<float>(dpr));
    // ImGui asserts a positive step; frames come on demand, so the step is capped.
    io.DeltaTime = std::clamp(static_cast<float>(clock_.restart()) / 1000.0f, 1e-4f, 0.5f);
    if (fonts_dirty_) {
        // New characters: rebuild the atlas; its texture is remade unless the renderer has not
        // made one yet (it does on its first frame).
        fonts_dirty_ = false;
        buildFonts();
        if (device_objects_) {
            ImGui_ImplOpenGL3_DestroyFontsTexture();
            ImGui_ImplOpenGL3_CreateFontsTexture();
        }
    }
    ImGui_ImplOpenGL3_NewFrame();
    device_objects_ = true;  // the first NewFrame of a context makes the shaders and the font texture
    ImGui::NewFrame();
    drawImGui();
    ImGui::Render();
    glViewport(0, 0, pixels.width(), pixels.height());
    glClearColor(0.12f, 0.12f, 0.13f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImDrawData* data = ImGui::GetDrawData();
    last_vertices_ = data ? data->TotalVtxCount : 0;
    ImGui_ImplOpenGL3_RenderDrawData(data);
    for (GLenum e = glGetError(); e != GL_NO_ERROR; e = glGetError()) ++gl_errors_;
    frame_ = fbo_->toImage();  // in Qt's row order
    frame_.setDevicePixelRatio(dpr);
    fbo_->release();
    gl_->doneCurrent();
    ++frames_;
}

bool ImGuiWidget::drawIfDue() {
    if (!dirty_ && !frame_.isNull()) return false;
    dirty_ = false;
    drawFrame();
    return true;
}

QImage ImGuiWidget::grabFramebuffer() {
    drawIfDue();
    return frame_;
}

void ImGuiWidget::paintEvent(QPaintEvent*) {
    if (drawIfDue()) {
        if (pending_frames_ > 0) {
            --pending_frames_;
            dirty_ = true;
            update();
        }
    }
    QPainter p(this);
    if (frame_.isNull()) {
        p.fillRect(rect(), QColor(31, 31, 33));
        if (!gl_failure_.isEmpty()) {
            p.setPen(Qt::white);
            p.drawText(rect(), Qt::AlignCenter | Qt::TextWordWrap, tr("This view needs OpenGL: %1.").arg(gl_failure_));
        }
        return;
    }
    p.drawImage(QPoint(0, 0), frame_);
}

void ImGuiWidget::resizeEvent(QResizeEvent* event) {
    dirty_ = true;
    QWidget::resizeEvent(event);
}

void ImGuiWidget::mouseMoveEvent(QMouseEvent* event) {
    makeImGuiCurrent();
    ImGui::GetIO().MousePos = ImVec2(static_cast<float>(event->position().x()), static_cast<float>(event->position().y()));
    requestFrames();
}

void ImGuiWidget::mousePressEvent(QMouseEvent* event) {
    makeImGuiCurrent();
    if (const int b = imgui_button(event->button()); b >= 0) ImGui::GetIO().MouseDown[b] = true;
    setModifiers(event->modifiers());
    requestFrames();
}

void ImGuiWidget::mouseReleaseEvent(QMouseEvent* event) {
    makeImGuiCurrent();
    if (const int b = imgui_button(event->button()); b >= 0) ImGui::GetIO().MouseDown[b] = false;
    requestFrames();
}

void ImGuiWidget::wheelEvent(QWheelEvent* event) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.MouseWheel += static_cast<float>(event->angleDelta().y()) / 120.0f;
    io.MouseWheelH += static_cast<float>(event->angleDelta().x()) / 120.0f;
    event->accept();
    requestFrames();
}

void ImGuiWidget::setModifiers(Qt::KeyboardModifiers m) {
    ImGuiIO& io = ImGui::GetIO();
    io.KeyCtrl = m & Qt::ControlModifier;
    io.KeyShift = m & Qt::ShiftModifier;
    io.KeyAlt = m & Qt::AltModifier;
    io.KeySuper = m & Qt::MetaModifier;
}

void ImGuiWidget::setKey(QKeyEvent* event, bool down) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    setModifiers(event->modifiers());
    if (const int k = imgui_key(event->key()); k >= 0) io.KeysDown[k] = down;
    if (down && !event->text().isEmpty() && event->text().at(0).isPrint())
        io.AddInputCharactersUTF8(event->text().toUtf8().constData());
    requestFrames();
}

void ImGuiWidget::keyPressEvent(QKeyEvent* event) {
    setKey(event, true);
    // Keys ImGui does not use go on to the window (shortcuts).
    if (imgui_key(event->key()) < 0 && !ImGui::GetIO().WantTextInput) QWidget::keyPressEvent(event);
}

void ImGuiWidget::keyReleaseEvent(QKeyEvent* event) { setKey(event, false); }

void ImGuiWidget::leaveEvent(QEvent* event) {
    makeImGuiCurrent();
    ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
    requestFrames();
    QWidget::leaveEvent(event);
}

void ImGuiWidget::focusOutEvent(QFocusEvent* event) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    std::fill(std::begin(io.KeysDown), std::end(io.KeysDown), false);
    std::fill(std::begin(io.MouseDown), std::end(io.MouseDown), false);
    io.KeyCtrl = io.KeyShift = io.KeyAlt = io.KeySuper = false;
    requestFrames();
    QWidget::focusOutEvent(event);
}

}  // namespace moe::ui
