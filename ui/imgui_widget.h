// A widget that hosts one Dear ImGui context (ImGui 1.86 with its OpenGL 3 renderer): it
// forwards Qt's mouse, wheel and key events into ImGui's input (the 1.86 API: MousePos,
// MouseDown[], KeysDown[] through KeyMap) and draws a frame only when asked — after input,
// a resize or requestFrames() — plus the few frames ImGui needs to settle (a tooltip appears
// the frame after the hover), so an idle view costs no CPU. Subclasses draw in drawImGui().
// The frame is drawn with OpenGL into a framebuffer object of the widget's own context (on an
// offscreen surface) and read back into an image that paintEvent draws: the window holding
// the view stays on Qt's raster path. (A QOpenGLWidget would have Qt compose the whole window
// through OpenGL on every flush, whatever changed: on a machine without a GPU driver — Xvfb,
// a VNC or X-forwarded session — Mesa's llvmpipe rasterising every pixel of the window on the
// CPU each time.) The context is the widget's for its life: moving it to another window (a
// dock floated) keeps it.
// Not usable on platforms without OpenGL (offscreen, minimal): check glAvailable() first.
// Text: DejaVu Sans for Latin, Greek, Cyrillic and symbols; characters beyond those (the CJK of
// Chinese tokens, full-width forms) are added on demand from a system CJK font (addGlyphs).
#pragma once

#include <imgui.h>

#include <QElapsedTimer>
#include <QImage>
#include <QOpenGLFunctions>
#include <QSet>
#include <QVector>
#include <QWidget>
#include <memory>

struct ImGuiContext;
class QOffscreenSurface;
class QOpenGLContext;
class QOpenGLFramebufferObject;

namespace moe::ui {

class ImGuiWidget : public QWidget, protected QOpenGLFunctions {
    Q_OBJECT
public:
    explicit ImGuiWidget(QWidget* parent = nullptr);
    ~ImGuiWidget() override;

    // Whether this process's Qt platform has OpenGL for the view (not offscreen or minimal).
    static bool glAvailable();

    int framesDrawn() const { return frames_; }
    int glErrors() const { return gl_errors_; }           // glGetError() codes seen after frames
    // GL contexts set up for ImGui views in this process so far (one a view, at its first frame).
    static int contextsInitialised();
    // The last frame drawn (drawing one first where one is due), at the device's pixels.
    QImage grabFramebuffer();
    // Why the view has no OpenGL context, or "" (it has one, or has not tried yet).
    QString glFailure() const { return gl_failure_; }
    int64_t lastVertexCount() const { return last_vertices_; }  // of the last frame's draw data
    // Draws again now and for a few frames after (ImGui settles hover state and tooltips).
    void requestFrames(int n = 2);
    // Makes the characters of `text` drawable: those beyond the base font's ranges (CJK,
    // full-width forms, …) are added to the font atlas from a system CJK font before the next
    // frame. The atlas only grows (up to kMaxExtraGlyphs characters).
    void addGlyphs(const QString& text);
    // Whether the current atlas has a glyph for the character (after a frame is drawn).
    bool hasGlyph(char32_t c) const;
    // The font file the extra glyphs come from, or "" when none of the known ones is installed.
    static QString extraFontPath();
    static constexpr int kMaxExtraGlyphs = 30000;

protected:
    virtual void drawImGui() = 0;  // between ImGui::NewFrame() and ImGui::Render()
    ImGuiContext* imguiContext() const { return ctx_; }

    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void keyReleaseEvent(QKeyEvent* event) override;
    void leaveEvent(QEvent* event) override;
    void focusOutEvent(QFocusEvent* event) override;

private:
    void makeImGuiCurrent() const;
    bool initializeGL();  // the context, its surface and ImGui's renderer; false where none can be made
    void drawFrame();     // an ImGui frame into the framebuffer object, read back into frame_
    bool drawIfDue();     // drawFrame where a frame is due (or none drawn yet); whether it did
    void shutdownRenderer();
    void setKey(QKeyEvent* event, bool down);
    void setModifiers(Qt::KeyboardModifiers m);
    void buildFonts();

    ImGuiContext* ctx_ = nullptr;
    std::unique_ptr<QOpenGLContext> gl_;
    std::unique_ptr<QOffscreenSurface> surface_;
    std::unique_ptr<QOpenGLFramebufferObject> fbo_;
    QImage frame_;
    bool dirty_ = true;  // a frame is due (input, a resize, requestFrames) before the next paint
    QString gl_failure_;
    bool renderer_ready_ = false;
    int pending_frames_ = 0;
    int frames_ = 0;
    int gl_errors_ = 0;
    int64_t last_vertices_ = 0;
    QElapsedTimer clock_;
    QSet<char32_t> extra_chars_;     // characters beyond the base ranges asked for so far
    QVector<ImWchar> extra_ranges_;  // their ranges for the atlas (kept alive while it is built)
    bool fonts_dirty_ = false;
    bool device_objects_ = false;  // this GL context's ImGui objects exist (after its first frame)
};

}  // namespace moe::ui
