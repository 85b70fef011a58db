//! The UI tree of every screen as WeCom 4.1 draws it (the app's screens, the launcher,
//! overlays and dialogs), and the phone's layout variant of labels.

use super::state::{file_name, Bubble, Overlay, Screen};
use super::widgets::{
    back_button, clipped, entry, grid_item, remark_row, row, title_bar, value_text,
};
use super::{
    DialogFault, DialogStyle, Fault, Phone, CHAT_LIST, CHAT_ROW, LAUNCHER_PACKAGE,
    PERMISSION_PACKAGE, SCREEN_H, SCREEN_W, WECOM_PACKAGE,
};

use crate::ui::Tab;
use crate::ui::{Action, Node, Rect, TagPurpose};

impl Phone {
    /// The view hierarchy of what is on screen now, in the phone's layout
    /// variant of labels: dumps and taps see the same tree.
    pub fn tree(&self) -> Node {
        self.as_shown(self.drawn_tree())
    }

    /// A drawn tree as the phone shows it: in its layout variant of labels,
    /// without the views a [`Fault::MissingText`] leaves out.
    pub(super) fn as_shown(&self, mut tree: Node) -> Node {
        if self.labels == crate::Labels::Text {
            labels_as_text(&mut tree);
        }
        for fault in &self.faults {
            if let Fault::MissingText { text } = fault {
                drop_text(&mut tree, text);
            }
        }
        tree
    }

    /// The view hierarchy as WeCom 4.1 draws it.
    fn drawn_tree(&self) -> Node {
        let full = Rect::new(0, 0, SCREEN_W, SCREEN_H);
        let mut root = if self.foreground {
            self.app_tree()
        } else {
            launcher_tree(self.wecom_version.is_some())
        };
        if let Some(overlay) = &self.overlay {
            if let (true, Overlay::Dialog(dialog)) = (self.foreground, overlay) {
                if dialog.style == DialogStyle::Window {
                    // A dialog window is the active window: the dump shows it alone.
                    return overlay_tree(overlay);
                }
            }
            if self.foreground || matches!(overlay, Overlay::Permission) {
                root = Node::new("android.widget.FrameLayout", &root.package.clone(), full)
                    .child(root)
                    .child(overlay_tree(overlay));
            }
        }
        root
    }

    fn app_tree(&self) -> Node {
        let p = WECOM_PACKAGE;
        let full = Rect::new(0, 0, SCREEN_W, SCREEN_H);
        let root = Node::new("android.widget.FrameLayout", p, full);
        let content = Rect::new(0, 248, SCREEN_W, 2208);
        match self.top() {
            Screen::Main(tab) => {
                let body = match tab {
                    Tab::Messages => {
                        // Only the rows in view are in the dump, as a RecyclerView
                        // has no views for the rest; a row cut by an edge is clipped.
                        let scroll = self.chat_scroll.min(self.max_chat_scroll());
                        let rows = self.chats.iter().enumerate().filter_map(|(i, c)| {
                            let top = CHAT_LIST.top + CHAT_ROW * i as i32 - scroll;
                            if top + CHAT_ROW <= CHAT_LIST.top || top >= CHAT_LIST.bottom {
                                return None;
                            }
                            let last = c.messages.last().map(|m| m.1.preview()).unwrap_or_default();
                            let row = Node::new(
                                "android.widget.RelativeLayout",
                                p,
                                Rect::new(0, top, SCREEN_W, top + CHAT_ROW),
                            )
                            .id("conversation_item")
                            .on_tap(Action::OpenChat(c.with.clone()))
                            .on_long_press(Action::ChatMenu(c.with.clone()))
                            .child(
                                Node::new(
                                    "android.widget.ImageView",
                                    p,
                                    Rect::new(36, top + 30, 176, top + 170),
                                )
                                .id("photo"),
                            )
                            .child(
                                Node::new(
                                    "android.widget.TextView",
                                    p,
                                    Rect::new(212, top + 36, 800, top + 96),
                                )
                                .id("title")
                                .text(&c.with),
                            )
                            .child(
                                Node::new(
                                    "android.widget.TextView",
                                    p,
                                    Rect::new(212, top + 110, 1000, top + 160),
                                )
                                .id("content")
                                .text(&last),
                            );
                            clipped(row, CHAT_LIST)
                        });
                        let mut list =
                            Node::new("androidx.recyclerview.widget.RecyclerView", p, content)
                                .id("conversation_list")
                                .children(rows);
                        list.scrollable = self.max_chat_scroll() > 0;
                        list
                    }
                    Tab::Contacts => {
                        let mut list = vec![
                            Node::new("android.widget.TextView", p, Rect::new(36, 268, 1044, 368))
                                .id("search_bar")
                                .text("搜索")
                                .on_tap(Action::OpenContactSearch),
                            entry(p, 388, "新的客户", Action::OpenFriendRequests),
                            entry(p, 548, "添加客户", Action::OpenAddFriend),
                        ];
                        for (i, name) in self.contacts.iter().enumerate() {
                            let top = 728 + 160 * i as i32;
                            list.push(
                                entry(p, top, name, Action::OpenProfile(name.clone()))
                                    .id("contact_item"),
                            );
                        }
                        Node::new("android.widget.ListView", p, content)
                            .id("contact_list")
                            .children(list)
                    }
                    Tab::Workbench => Node::new("android.widget.GridView", p, content)
                        .id("workbench_grid")
                        .child(grid_item(p, 0, "客户朋友圈", Some(Action::OpenMoments)))
                        .child(grid_item(p, 1, "客户联系", None))
                        .child(grid_item(p, 2, "群发助手", None))
                        .child(grid_item(p, 3, "打卡", None)),
                };
                let title = match tab {
                    Tab::Messages => "消息",
                    Tab::Contacts => "通讯录",
                    Tab::Workbench => "工作台",
                };
                let tabs = [
                    (Tab::Messages, "消息"),
                    (Tab::Contacts, "通讯录"),
                    (Tab::Workbench, "工作台"),
                ];
                let bar = Node::new(
                    "android.widget.LinearLayout",
                    p,
                    Rect::new(0, 2208, SCREEN_W, SCREEN_H),
                )
                .id("tab_bar")
                .children(tabs.iter().enumerate().map(|(i, (t, label))| {
                    let l = 360 * i as i32;
                    let mut n = Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(l, 2208, l + 360, SCREEN_H),
                    )
                    .id("tab_item")
                    .text(label)
                    .desc(label)
                    .on_tap(Action::Tab(*t));
                    n.checked = None;
                    if t == tab {
                        n.focused = false;
                    }
                    n
                }));
                root.child(title_bar(p, title, false))
                    .child(body)
                    .child(bar)
            }
            Screen::Chat { with, draft, panel } => {
                // With the more-functions panel open the input bar moves up above it.
                let bar_top = if *panel { PANEL_TOP - 168 } else { 2232 };
                let messages = self
                    .chats
                    .iter()
                    .find(|c| c.with == *with)
                    .map(|c| c.messages.as_slice())
                    .unwrap_or(&[]);
                // The list shows the latest messages that fit, as it scrolls to the end.
                let fit = ((bar_top - 268) / 150).max(0) as usize;
                let shown = &messages[messages.len().saturating_sub(fit)..];
                let bubbles = shown.iter().enumerate().map(|(i, (mine, bubble))| {
                    let top = 268 + 150 * i as i32;
                    let r = if *mine {
                        Rect::new(400, top, 1044, top + 120)
                    } else {
                        Rect::new(36, top, 680, top + 120)
                    };
                    match bubble {
                        Bubble::Text(text) => Node::new("android.widget.TextView", p, r)
                            .id("chat_bubble")
                            .text(text),
                        Bubble::Image(_) => Node::new("android.widget.ImageView", p, r)
                            .id("chat_image")
                            .desc("图片"),
                        Bubble::File(path) => {
                            let size = self.file(path).map_or(0, |f| f.data.len());
                            Node::new("android.widget.LinearLayout", p, r)
                                .id("chat_file")
                                .child(
                                    Node::new(
                                        "android.widget.TextView",
                                        p,
                                        Rect::new(r.left + 24, top + 10, r.right - 24, top + 60),
                                    )
                                    .id("file_name")
                                    .text(file_name(path)),
                                )
                                .child(
                                    Node::new(
                                        "android.widget.TextView",
                                        p,
                                        Rect::new(r.left + 24, top + 64, r.right - 24, top + 110),
                                    )
                                    .id("file_size")
                                    .text(&human_size(size)),
                                )
                        }
                    }
                });
                let list = Node::new(
                    "androidx.recyclerview.widget.RecyclerView",
                    p,
                    Rect::new(0, 248, SCREEN_W, bar_top),
                )
                .id("message_list")
                .children(bubbles);
                let (field_top, field_bottom) = (bar_top + 24, bar_top + 144);
                let mut input = Node::new(
                    "android.widget.EditText",
                    p,
                    Rect::new(24, field_top, 840, field_bottom),
                )
                .id("input_editor")
                .text(draft)
                .on_tap(Action::FocusInput);
                input.focusable = true;
                input.focused = self.focused;
                let button_rect = Rect::new(864, field_top, 1056, field_bottom);
                let button = if draft.is_empty() {
                    Node::new("android.widget.ImageView", p, button_rect)
                        .id("more_button")
                        .desc(if *panel {
                            "更多功能按钮，已展开"
                        } else {
                            "更多功能按钮，已折叠"
                        })
                        .on_tap(Action::TogglePanel)
                } else {
                    Node::new("android.widget.Button", p, button_rect)
                        .id("send_button")
                        .text("发送")
                        .on_tap(Action::Send)
                };
                let mut screen = root.child(title_bar(p, with, true)).child(list).child(
                    Node::new(
                        "android.widget.LinearLayout",
                        p,
                        Rect::new(0, bar_top, SCREEN_W, bar_top + 168),
                    )
                    .id("input_panel")
                    .child(input)
                    .child(button),
                );
                if *panel {
                    screen = screen.child(more_panel(p));
                }
                screen
            }
            Screen::ContactSearch { query } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(150, 100, 1044, 228))
                        .id("search_input")
                        .text(query)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let hits: Vec<&String> = if query.is_empty() {
                    Vec::new()
                } else {
                    self.contacts
                        .iter()
                        .filter(|c| c.contains(query.as_str()))
                        .collect()
                };
                let mut results =
                    Node::new("android.widget.ListView", p, content).id("search_result");
                if hits.is_empty() && !query.is_empty() {
                    results = results.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 300, SCREEN_W, 400),
                        )
                        .text("无搜索结果"),
                    );
                }
                for (i, name) in hits.into_iter().enumerate() {
                    let top = 268 + 160 * i as i32;
                    results = results.child(
                        entry(p, top, name, Action::OpenProfile(name.clone())).id("search_item"),
                    );
                }
                root.child(back_button(p)).child(field).child(results)
            }
            Screen::Profile { name } => root
                .child(title_bar(p, "", true))
                .child(
                    Node::new("android.widget.TextView", p, Rect::new(212, 300, 900, 380))
                        .id("contact_name")
                        .text(name),
                )
                .child(
                    Node::new("android.widget.Button", p, Rect::new(36, 1800, 1044, 1940))
                        .id("send_message_button")
                        .text("发消息")
                        .on_tap(Action::MessageFromProfile(name.clone())),
                ),
            Screen::AddFriend {
                query,
                result,
                requested,
            } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 268, 860, 388))
                        .id("search_input")
                        .text(query)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let mut n = root
                    .child(title_bar(p, "添加客户", true))
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 400, 1044, 460))
                            .text("手机号/企业微信号"),
                    )
                    .child(field)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 268, 1044, 388))
                            .id("search_button")
                            .text("搜索")
                            .on_tap(Action::AddFriendSearch),
                    );
                match result {
                    None => {}
                    Some(None) => {
                        n = n.child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(0, 520, SCREEN_W, 600),
                            )
                            .text("该用户不存在"),
                        )
                    }
                    Some(Some(name)) => {
                        n = n.child(
                            Node::new("android.widget.TextView", p, Rect::new(212, 520, 900, 600))
                                .id("result_name")
                                .text(name),
                        );
                        n = n.child(if *requested {
                            Node::new("android.widget.TextView", p, Rect::new(36, 700, 1044, 840))
                                .text("等待验证")
                        } else {
                            Node::new("android.widget.Button", p, Rect::new(36, 700, 1044, 840))
                                .id("add_button")
                                .text("添加到通讯录")
                                .on_tap(Action::AddToContacts(name.clone()))
                        });
                    }
                }
                n
            }
            Screen::Greeting {
                greeting,
                remark,
                tags,
                remark_focus,
                ..
            } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 400, 1044, 640))
                        .id("verify_message")
                        .text(greeting)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused && !*remark_focus;
                root.child(title_bar(p, "申请添加客户", true))
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 300, 1044, 380))
                            .text("发送添加邀请"),
                    )
                    .child(field)
                    .child(remark_row(p, 680, remark, self.focused && *remark_focus))
                    .child(
                        entry(p, 850, "标签", Action::OpenTags(TagPurpose::Request))
                            .id("tag_row")
                            .child(value_text(p, 850, &tags.join("、"))),
                    )
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("send_request_button")
                            .text("发送")
                            .on_tap(Action::SendFriendRequest),
                    )
            }
            Screen::FriendRequests => {
                let rows = self.requests.iter().enumerate().map(|(i, r)| {
                    let top = 268 + 200 * i as i32;
                    let row = Node::new(
                        "android.widget.RelativeLayout",
                        p,
                        Rect::new(0, top, SCREEN_W, top + 200),
                    )
                    .id("request_item")
                    .child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(212, top + 30, 800, top + 90),
                        )
                        .id("request_name")
                        .text(&r.name),
                    )
                    .child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(212, top + 110, 800, top + 170),
                        )
                        .id("request_greeting")
                        .text(&r.greeting),
                    );
                    if r.accepted {
                        row.child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(840, top + 50, 1044, top + 150),
                            )
                            .text("已添加"),
                        )
                    } else {
                        row.child(
                            Node::new(
                                "android.widget.Button",
                                p,
                                Rect::new(840, top + 50, 1044, top + 150),
                            )
                            .id("accept_button")
                            .text("通过")
                            .on_tap(Action::Accept(r.name.clone())),
                        )
                    }
                });
                root.child(title_bar(p, "新的客户", true)).child(
                    Node::new("android.widget.ListView", p, content)
                        .id("request_list")
                        .children(rows),
                )
            }
            Screen::Verify { remark, .. } => root
                .child(title_bar(p, "通过验证", true))
                .child(
                    Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                        .id("confirm_button")
                        .text("完成")
                        .on_tap(Action::ConfirmVerify),
                )
                .child(remark_row(p, 268, remark, self.focused)),
            Screen::Visibility { by_tags, tags } => {
                let mut all = entry(p, 268, "全部客户", Action::VisibleToAll).id("visible_all");
                let mut by = entry(
                    p,
                    428,
                    "按标签筛选",
                    Action::OpenTags(TagPurpose::Visibility),
                )
                .id("visible_by_tag")
                .child(value_text(p, 428, &tags.join("、")));
                all.checked = Some(!*by_tags);
                by.checked = Some(*by_tags);
                root.child(title_bar(p, "可见的客户", true))
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("confirm_button")
                            .text("完成")
                            .on_tap(Action::VisibilityDone),
                    )
                    .child(all)
                    .child(by)
            }
            Screen::TagPicker { selected, .. } => {
                // The enterprise's tags as chips, four to a row, under their group.
                let chips = self.tags.iter().enumerate().map(|(i, tag)| {
                    let l = 36 + 252 * (i as i32 % 4);
                    let t = 400 + 130 * (i as i32 / 4);
                    let mut chip = Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(l, t, l + 232, t + 110),
                    )
                    .id("tag_item")
                    .text(tag)
                    .on_tap(Action::ToggleTag(tag.clone()));
                    chip.checked = Some(selected.contains(tag));
                    chip
                });
                let mut list = Node::new("android.widget.ScrollView", p, content)
                    .id("tag_list")
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 290, 1044, 370))
                            .id("tag_group")
                            .text("企业标签"),
                    )
                    .children(chips);
                if self.tags.is_empty() {
                    list = list.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 400, SCREEN_W, 500),
                        )
                        .text("暂无标签"),
                    );
                }
                root.child(title_bar(p, "选择标签", true))
                    .child(list)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(840, 2240, 1044, 2380))
                            .id("confirm_button")
                            .text(&if selected.is_empty() {
                                "确定".to_owned()
                            } else {
                                format!("确定({})", selected.len())
                            })
                            .on_tap(Action::TagsDone),
                    )
            }
            Screen::MomentsHome => root.child(title_bar(p, "客户朋友圈", true)).child(
                Node::new(
                    "android.widget.ImageView",
                    p,
                    Rect::new(920, 100, 1044, 228),
                )
                .id("post_entry")
                .desc("发表到客户朋友圈")
                .on_tap(Action::OpenComposer),
            ),
            Screen::Composer { text, media, tags } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 268, 1044, 700))
                        .id("moments_input")
                        .text(text)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let mut n = root
                    .child(title_bar(p, "", true))
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("publish_button")
                            .text("发表")
                            .on_tap(Action::PostMoment),
                    )
                    .child(field);
                for (i, m) in media.iter().enumerate() {
                    let l = 36 + 330 * (i as i32 % 3);
                    let t = 740 + 330 * (i as i32 / 3);
                    n = n.child(
                        Node::new(
                            "android.widget.ImageView",
                            p,
                            Rect::new(l, t, l + 300, t + 300),
                        )
                        .id("media_thumb")
                        .desc(&format!("图片{}", i + 1))
                        .text(file_name(m)),
                    );
                }
                let i = media.len() as i32;
                let l = 36 + 330 * (i % 3);
                let t = 740 + 330 * (i / 3);
                let shown_to = if tags.is_empty() {
                    "全部客户".to_owned()
                } else {
                    tags.join("、")
                };
                n.child(
                    entry(p, 2050, "可见的客户", Action::OpenVisibility)
                        .id("visible_row")
                        .child(value_text(p, 2050, &shown_to)),
                )
                .child(
                    Node::new(
                        "android.widget.ImageView",
                        p,
                        Rect::new(l, t, l + 300, t + 300),
                    )
                    .id("add_media")
                    .desc("添加图片")
                    .on_tap(Action::OpenPicker),
                )
            }
            Screen::Picker { selected, chat } => {
                // From a chat the album sends at once; for Moments it hands the
                // pictures back to the composer.
                let verb = if chat.is_some() { "发送" } else { "完成" };
                let mut n = root.child(title_bar(p, "图片和视频", true)).child(
                    Node::new("android.widget.Button", p, Rect::new(840, 100, 1044, 228))
                        .id("done_button")
                        .text(&if selected.is_empty() {
                            verb.to_owned()
                        } else {
                            format!("{verb}({})", selected.len())
                        })
                        .on_tap(Action::PickerDone),
                );
                // The grid shows the rows that fit above the bottom bar.
                let fit = 4 * ((2208 - 248) / 270) as usize;
                for (i, m) in self.album().into_iter().take(fit).enumerate() {
                    let l = 270 * (i as i32 % 4);
                    let t = 248 + 270 * (i as i32 / 4);
                    let mut cell = Node::new(
                        "android.widget.ImageView",
                        p,
                        Rect::new(l, t, l + 266, t + 266),
                    )
                    .id("media_item")
                    .desc(&format!("照片, {}", file_name(m)))
                    .on_tap(Action::ToggleMedia(m.clone()));
                    cell.checked = Some(selected.contains(m));
                    n = n.child(cell);
                }
                if chat.is_some() {
                    let mut original = Node::new(
                        "android.widget.CheckBox",
                        p,
                        Rect::new(400, 2240, 680, 2380),
                    )
                    .id("original_checkbox")
                    .text("原图");
                    original.checked = Some(false);
                    n = n.child(
                        Node::new(
                            "android.widget.RelativeLayout",
                            p,
                            Rect::new(0, 2208, SCREEN_W, SCREEN_H),
                        )
                        .id("bottom_bar")
                        .child(
                            Node::new("android.widget.TextView", p, Rect::new(36, 2240, 236, 2380))
                                .id("preview_button")
                                .text("预览"),
                        )
                        .child(original),
                    );
                }
                n
            }
            Screen::FileSource { .. } => root.child(title_bar(p, "选择文件", true)).child(
                Node::new("android.widget.ListView", p, content)
                    .id("source_list")
                    .child(row(p, 268, "微盘文件").id("source_item"))
                    .child(row(p, 428, "聊天中的文件").id("source_item"))
                    .child(entry(p, 588, "手机存储", Action::OpenPhoneStorage).id("source_item")),
            ),
            Screen::Storage { selected, .. } => {
                let fit = ((2208 - 268) / 160) as usize;
                let files = self.storage_files();
                let empty = files.is_empty();
                let rows = files
                    .into_iter()
                    .take(fit)
                    .enumerate()
                    .map(|(i, (path, file))| {
                        let top = 268 + 160 * i as i32;
                        let mut check = Node::new(
                            "android.widget.CheckBox",
                            p,
                            Rect::new(930, top + 40, 1010, top + 120),
                        )
                        .id("file_checkbox");
                        check.checked = Some(selected.as_ref() == Some(path));
                        Node::new(
                            "android.widget.RelativeLayout",
                            p,
                            Rect::new(0, top, SCREEN_W, top + 150),
                        )
                        .id("file_item")
                        .on_tap(Action::PickFile(path.clone()))
                        .child(
                            Node::new(
                                "android.widget.ImageView",
                                p,
                                Rect::new(36, top + 25, 136, top + 125),
                            )
                            .id("file_icon"),
                        )
                        .child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(172, top + 20, 900, top + 80),
                            )
                            .id("file_name")
                            .text(file_name(path)),
                        )
                        .child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(172, top + 86, 900, top + 136),
                            )
                            .id("file_size")
                            .text(&human_size(file.data.len())),
                        )
                        .child(check)
                    });
                let mut list = Node::new(
                    "android.widget.ListView",
                    p,
                    Rect::new(0, 248, SCREEN_W, 2208),
                )
                .id("file_list")
                .children(rows);
                if empty {
                    list = list.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 300, SCREEN_W, 400),
                        )
                        .text("暂无文件"),
                    );
                }
                root.child(title_bar(p, "手机存储", true))
                    .child(list)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(840, 2240, 1044, 2380))
                            .id("send_button")
                            .text(if selected.is_some() {
                                "发送(1)"
                            } else {
                                "发送"
                            })
                            .on_tap(Action::SendFile),
                    )
            }
        }
    }
}

/// Where the chat's more-functions panel starts; it fills the screen below.
const PANEL_TOP: i32 = 1728;

/// The chat's more-functions panel, as WeCom lays it out: two rows of four. Only 图片
/// and 文件 lead anywhere in the simulator.
fn more_panel(p: &str) -> Node {
    let items = [
        ("图片", Some(Action::OpenAlbum)),
        ("拍摄", None),
        ("视频通话", None),
        ("位置", None),
        ("红包", None),
        ("文件", Some(Action::OpenFiles)),
        ("名片", None),
        ("微盘", None),
    ];
    Node::new(
        "android.widget.GridView",
        p,
        Rect::new(0, PANEL_TOP, SCREEN_W, SCREEN_H),
    )
    .id("more_panel")
    .children(items.into_iter().enumerate().map(|(i, (label, action))| {
        let l = 270 * (i as i32 % 4);
        let t = PANEL_TOP + 336 * (i as i32 / 4);
        let mut item = Node::new(
            "android.widget.LinearLayout",
            p,
            Rect::new(l, t, l + 270, t + 336),
        )
        .id("panel_item")
        .child(
            Node::new(
                "android.widget.ImageView",
                p,
                Rect::new(l + 75, t + 40, l + 195, t + 160),
            )
            .id("panel_icon"),
        )
        .child(
            Node::new(
                "android.widget.TextView",
                p,
                Rect::new(l, t + 180, l + 270, t + 240),
            )
            .id("panel_label")
            .text(label),
        );
        if let Some(action) = action {
            item = item.on_tap(action);
        }
        item
    }))
}

/// The home screen, with WeCom's icon when it is installed.
fn launcher_tree(wecom: bool) -> Node {
    let p = LAUNCHER_PACKAGE;
    let icon = |i: i32, label: &str, action: Option<Action>| {
        let l = 40 + 250 * i;
        let mut n = Node::new(
            "android.widget.TextView",
            p,
            Rect::new(l, 1900, l + 240, 2150),
        )
        .text(label)
        .desc(label);
        if let Some(a) = action {
            n = n.on_tap(a);
        }
        n
    };
    Node::new(
        "android.widget.FrameLayout",
        p,
        Rect::new(0, 0, SCREEN_W, SCREEN_H),
    )
    .child(
        Node::new("android.view.View", p, Rect::new(0, 1850, SCREEN_W, 2200))
            .id("workspace")
            .children(wecom.then(|| icon(0, "企业微信", Some(Action::LaunchWeCom))))
            .child(icon(1, "设置", None))
            .child(icon(2, "相册", None))
            .child(icon(3, "电话", None)),
    )
}

pub(super) fn overlay_tree(overlay: &Overlay) -> Node {
    let dialog = |p: &str, title: &str, message: &str, buttons: Vec<(&str, &str, Action)>| {
        let n = buttons.len() as i32;
        let w = (1000 - 80) / n.max(1);
        let mut d = Node::new(
            "android.widget.LinearLayout",
            p,
            Rect::new(80, 860, 1000, 1540),
        )
        .id("dialog_root")
        .child(
            Node::new("android.widget.TextView", p, Rect::new(120, 900, 960, 990))
                .id("dialog_title")
                .text(title),
        )
        .child(
            Node::new(
                "android.widget.TextView",
                p,
                Rect::new(120, 1010, 960, 1300),
            )
            .id("dialog_message")
            .text(message),
        );
        for (i, (id, label, action)) in buttons.into_iter().enumerate() {
            let l = 80 + w * i as i32;
            d = d.child(
                Node::new("android.widget.Button", p, Rect::new(l, 1380, l + w, 1540))
                    .id(id)
                    .text(label)
                    .on_tap(action),
            );
        }
        d
    };
    let p = WECOM_PACKAGE;
    match overlay {
        Overlay::Dialog(fault) if fault.style == DialogStyle::Window => alert_dialog(fault),
        Overlay::Dialog(fault) => dialog(
            p,
            &fault.title,
            &fault.message,
            fault
                .buttons
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    (
                        ["dialog_cancel", "dialog_neutral", "dialog_confirm"][i.min(2)],
                        label.as_str(),
                        Action::DismissOverlay,
                    )
                })
                .collect(),
        ),
        Overlay::Risk { title, message } => dialog(
            p,
            title,
            message,
            vec![("dialog_confirm", "我知道了", Action::DismissOverlay)],
        ),
        Overlay::Update { forced } => {
            let mut buttons = vec![("dialog_confirm", "立即更新", Action::DismissOverlay)];
            if !forced {
                buttons.insert(0, ("dialog_cancel", "以后再说", Action::DismissOverlay));
            }
            dialog(
                p,
                "发现新版本",
                "企业微信有新版本可用，更新后体验更多功能",
                buttons,
            )
        }
        Overlay::Permission => dialog(
            PERMISSION_PACKAGE,
            "要允许“企业微信”访问您设备上的照片和媒体内容吗？",
            "",
            vec![
                (
                    "com.android.permissioncontroller:id/permission_allow_button",
                    "允许",
                    Action::DismissOverlay,
                ),
                (
                    "com.android.permissioncontroller:id/permission_deny_button",
                    "拒绝",
                    Action::DismissOverlay,
                ),
            ],
        ),
        Overlay::ChatMenu(with) => {
            Node::new("android.widget.ListView", p, Rect::new(240, 900, 840, 1380))
                .id("popup_menu")
                .child(
                    Node::new("android.widget.TextView", p, Rect::new(240, 900, 840, 1060))
                        .text("标为未读")
                        .on_tap(Action::MenuClose),
                )
                .child(
                    Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(240, 1060, 840, 1220),
                    )
                    .text("置顶")
                    .on_tap(Action::MenuClose),
                )
                .child(
                    Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(240, 1220, 840, 1380),
                    )
                    .text("删除")
                    .on_tap(Action::MenuDelete(with.clone())),
                )
        }
        Overlay::ConfirmDelete(with) => dialog(
            p,
            "",
            "删除后，将清空该聊天的消息记录",
            vec![
                ("dialog_cancel", "取消", Action::DismissOverlay),
                (
                    "dialog_confirm",
                    "删除",
                    Action::ConfirmDelete(with.clone()),
                ),
            ],
        ),
    }
}

/// A dialog as Android's `AlertDialog` draws it, in a window of its own: the
/// framework's ids, the buttons right-aligned (`button1` is the positive one, the
/// rightmost).
fn alert_dialog(fault: &DialogFault) -> Node {
    let p = WECOM_PACKAGE;
    let (top, bottom) = (852, 1548);
    let mut panel = Node::new(
        "android.widget.LinearLayout",
        p,
        Rect::new(84, top, 996, bottom),
    )
    .id("android:id/parentPanel");
    if !fault.title.is_empty() {
        panel = panel.child(
            Node::new("android.widget.TextView", p, Rect::new(140, 900, 940, 980))
                .id("android:id/alertTitle")
                .text(&fault.title),
        );
    }
    panel = panel.child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(140, 1000, 940, 1320),
        )
        .id("android:id/message")
        .text(&fault.message),
    );
    let ids = [
        "android:id/button1",
        "android:id/button2",
        "android:id/button3",
    ];
    for (i, label) in fault.buttons.iter().enumerate() {
        // button1 rightmost, then button2 to its left, then button3.
        let right = 940 - 260 * i as i32;
        panel = panel.child(
            Node::new(
                "android.widget.Button",
                p,
                Rect::new(right - 240, 1400, right, 1500),
            )
            .id(ids[i.min(2)])
            .text(label)
            .on_tap(Action::DismissOverlay),
        );
    }
    Node::new(
        "android.widget.FrameLayout",
        p,
        Rect::new(84, top, 996, bottom),
    )
    .child(panel)
}

/// Leaves out every view whose text is `text`, with its children.
fn drop_text(node: &mut Node, text: &str) {
    node.children.retain(|child| child.text != text);
    for child in &mut node.children {
        drop_text(child, text);
    }
}

/// Makes every label visible text only: a description alone moves into the
/// text, and one that repeats the text goes (WeCom's tabs carry both).
fn labels_as_text(node: &mut Node) {
    if node.text.is_empty() && !node.content_desc.is_empty() {
        node.text = std::mem::take(&mut node.content_desc);
    } else if node.text == node.content_desc {
        node.content_desc.clear();
    }
    for child in &mut node.children {
        labels_as_text(child);
    }
}

/// A file size as WeCom's file views show it: `512B`, `12.5K`, `3.1M`.
fn human_size(bytes: usize) -> String {
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1}K", b / 1024.0)
    } else {
        format!("{:.1}M", b / (1024.0 * 1024.0))
    }
}
