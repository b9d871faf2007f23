//! Synthetic crowds with a known truth, to measure fusion algorithms: street scenes with large
//! regions and many small objects, painted by workers with a chosen behaviour.

use crate::fixtures::Scene;

/// A small deterministic generator (SplitMix64), so every crowd is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

/// One object of a scene: a rectangle of one class, painted in order (later on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
    pub class: u8,
    /// A small object (a person or a car), as opposed to a region (road, building).
    pub small: bool,
}

/// A scene with a known truth: regions, then small objects on top.
#[derive(Debug, Clone)]
pub struct Truth {
    pub width: u32,
    pub height: u32,
    pub objects: Vec<Object>,
}

impl Truth {
    /// A random street of `width`×`height` (classes as in [`crate::fixtures::LABELS`]: 1 car,
    /// 2 road, 3 person, 4 building): a building and a road, then about a dozen people and
    /// eight cars, which together cover roughly a tenth of the image.
    pub fn street(width: u32, height: u32, rng: &mut Rng) -> Self {
        let (w, h) = (i64::from(width), i64::from(height));
        let mut r = |lo: i64, hi: i64| lo + rng.below((hi - lo).max(1) as u64) as i64;
        let mut objects = vec![
            Object {
                x0: 0,
                y0: r(h / 10, h / 5),
                x1: r(w * 3 / 10, w / 2),
                y1: h * 3 / 5,
                class: 4,
                small: false,
            },
            Object {
                x0: 0,
                y0: r(h * 11 / 20, h * 13 / 20),
                x1: w,
                y1: h,
                class: 2,
                small: false,
            },
        ];
        for _ in 0..10 {
            let (x, y) = (r(0, w - 20), r(h * 3 / 5, h - 10));
            objects.push(Object {
                x0: x,
                y0: y,
                x1: x + 20,
                y1: y + 10,
                class: 1,
                small: true,
            });
        }
        for _ in 0..14 {
            let (x, y) = (r(0, w - 6), r(h / 4, h - 14));
            objects.push(Object {
                x0: x,
                y0: y,
                x1: x + 6,
                y1: y + 14,
                class: 3,
                small: true,
            });
        }
        Self {
            width,
            height,
            objects,
        }
    }

    /// The true class of every pixel.
    pub fn scene(&self) -> Scene {
        self.render(self.objects.iter().copied())
    }

    fn render(&self, objects: impl Iterator<Item = Object>) -> Scene {
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        let mut classes = vec![0u8; (self.width * self.height) as usize];
        for o in objects {
            for y in o.y0.max(0)..o.y1.min(h) {
                for x in o.x0.max(0)..o.x1.min(w) {
                    classes[(y * w + x) as usize] = o.class;
                }
            }
        }
        Scene {
            width: self.width,
            height: self.height,
            classes,
        }
    }

    /// What a worker paints, by its behaviour; every edge it paints is off by up to a pixel.
    pub fn paint(&self, behaviour: Behaviour, rng: &mut Rng) -> Scene {
        let classes = 5;
        match behaviour {
            Behaviour::Spammer => {
                // Blocks of 8×8 pixels of random classes: no relation to the image at all.
                let mut s = self.render(std::iter::empty());
                let w = self.width as usize;
                let blocks: Vec<u8> = (0..w.div_ceil(8) * (self.height as usize).div_ceil(8))
                    .map(|_| rng.below(classes) as u8)
                    .collect();
                for (i, c) in s.classes.iter_mut().enumerate() {
                    *c = blocks[(i / w / 8) * w.div_ceil(8) + (i % w) / 8];
                }
                s
            }
            Behaviour::Blobs { cover } => {
                // Random classes in random blobs over `cover` of the image, nothing elsewhere.
                let mut s = self.render(std::iter::empty());
                self.blobs(&mut s, cover, rng, |_, rng| rng.below(classes) as u8);
                s
            }
            Behaviour::Sloppy { error } => {
                // The truth, with blobs of another class over `error` of the image.
                let mut s = self.traced(|o| Some(o.class), rng);
                self.blobs(&mut s, error, rng, |truth, rng| {
                    ((u64::from(truth) + 1 + rng.below(classes - 1)) % classes) as u8
                });
                s
            }
            Behaviour::Honest { omit } => {
                let mut skip = Rng::new(rng.next_u64());
                self.traced(
                    |o| (!(o.small && skip.chance(omit))).then_some(o.class),
                    rng,
                )
            }
            Behaviour::SkipsSmall => self.traced(|o| (!o.small).then_some(o.class), rng),
            Behaviour::OnlyLargest => {
                let mut count = [0usize; 256];
                for &c in &self.scene().classes {
                    count[usize::from(c)] += 1;
                }
                let largest = (1..256u16)
                    .max_by_key(|&c| (count[usize::from(c)], std::cmp::Reverse(c)))
                    .unwrap_or(1) as u8;
                self.traced(|o| (o.class == largest).then_some(o.class), rng)
            }
            Behaviour::Confuses { from, to } => {
                self.traced(|o| Some(if o.class == from { to } else { o.class }), rng)
            }
            Behaviour::Grows { px } => {
                let grown = self.objects.iter().map(|o| Object {
                    x0: o.x0 - px,
                    y0: o.y0 - px,
                    x1: o.x1 + px,
                    y1: o.y1 + px,
                    ..*o
                });
                Self {
                    objects: grown.collect(),
                    ..self.clone()
                }
                .traced(|o| Some(o.class), rng)
            }
            Behaviour::Misses { class } => {
                self.traced(|o| (o.class != class).then_some(o.class), rng)
            }
            Behaviour::Adversarial => {
                // Every object as the next class, on purpose.
                self.traced(|o| Some(o.class % (classes as u8 - 1) + 1), rng)
            }
        }
    }

    /// The scene painted object by object as `class_of` says (`None`: left unpainted), each
    /// edge jittered by up to a pixel.
    fn traced(&self, mut class_of: impl FnMut(&Object) -> Option<u8>, rng: &mut Rng) -> Scene {
        let mut kept = Vec::new();
        for o in &self.objects {
            let class = class_of(o);
            let mut jitter = || rng.below(3) as i64 - 1;
            let o = Object {
                x0: o.x0 + jitter(),
                y0: o.y0 + jitter(),
                x1: o.x1 + jitter(),
                y1: o.y1 + jitter(),
                ..*o
            };
            if let Some(class) = class {
                kept.push(Object { class, ..o });
            }
        }
        self.render(kept.into_iter())
    }

    /// Paints discs over about `cover` of `scene` (they overlap, so a little less), each of
    /// one class, chosen by `class_of(the true class at its centre, rng)`.
    fn blobs(
        &self,
        scene: &mut Scene,
        cover: f64,
        rng: &mut Rng,
        mut class_of: impl FnMut(u8, &mut Rng) -> u8,
    ) {
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        let truth = self.scene();
        let mut painted = 0.0;
        while painted < cover * (w * h) as f64 {
            let r = 3 + rng.below((w.min(h) / 8).max(4) as u64) as i64;
            let (cx, cy) = (rng.below(w as u64) as i64, rng.below(h as u64) as i64);
            let class = class_of(truth.classes[(cy * w + cx) as usize], rng);
            for y in (cy - r).max(0)..(cy + r + 1).min(h) {
                for x in (cx - r).max(0)..(cx + r + 1).min(w) {
                    if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                        scene.classes[(y * w + x) as usize] = class;
                    }
                }
            }
            painted += std::f64::consts::PI * (r * r) as f64;
        }
    }
}

/// How a worker paints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// Paints everything, but misses each small object with probability `omit`.
    Honest { omit: f64 },
    /// Paints everything, with blob-shaped errors (another class) over `error` of the image.
    Sloppy { error: f64 },
    /// Paints the regions only: every small object is left unlabelled (background).
    SkipsSmall,
    /// Paints the image's largest class only; everything else is left unlabelled.
    OnlyLargest,
    /// Paints class `from` as class `to`, everything else right.
    Confuses { from: u8, to: u8 },
    /// Paints every object as another class, on purpose.
    Adversarial,
    /// Paints random 8×8 blocks of random classes over the whole image.
    Spammer,
    /// Paints random classes in random blobs over `cover` of the image.
    Blobs { cover: f64 },
    /// Paints every object `px` pixels larger on every side (a systematic outline).
    Grows { px: i64 },
    /// Leaves class `class` unpainted (background), everything else right.
    Misses { class: u8 },
}

/// A pool of workers and how many of them label each image.
#[derive(Debug, Clone)]
pub struct Crowd {
    pub workers: Vec<(String, Behaviour)>,
    pub per_image: usize,
}

/// One labelled image: the truth, and each assigned worker's id and painting.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub truth: Scene,
    pub answers: Vec<(String, Scene)>,
}

impl Crowd {
    /// `images` random streets, image i of size `sizes[i % sizes.len()]`, each painted by
    /// `per_image` consecutive workers of the pool from a random start (so every pair of
    /// workers meets).
    pub fn label(&self, images: usize, sizes: &[(u32, u32)], seed: u64) -> Vec<Labelled> {
        let mut rng = Rng::new(seed);
        (0..images)
            .map(|i| {
                let (width, height) = sizes[i % sizes.len()];
                let truth = Truth::street(width, height, &mut rng);
                let n = self.workers.len();
                let start = rng.below(n as u64) as usize;
                let answers = (0..self.per_image)
                    .map(|k| {
                        let (id, b) = &self.workers[(start + k) % n];
                        (id.clone(), truth.paint(*b, &mut rng))
                    })
                    .collect();
                Labelled {
                    truth: truth.scene(),
                    answers,
                }
            })
            .collect()
    }
}

/// Share of pixels, over every image, where `got` equals the truth.
pub fn pixel_accuracy<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> f64 {
    let (mut right, mut all) = (0u64, 0u64);
    for (truth, got) in pairs {
        assert_eq!(truth.len(), got.len(), "mask size");
        right += truth.iter().zip(got).filter(|(a, b)| a == b).count() as u64;
        all += truth.len() as u64;
    }
    right as f64 / all.max(1) as f64
}

/// A pool of workers, `per_image` of whom label each image.
pub fn pool(workers: &[(&str, Behaviour)], per_image: usize) -> Crowd {
    Crowd {
        workers: workers
            .iter()
            .map(|(id, b)| ((*id).to_owned(), *b))
            .collect(),
        per_image,
    }
}

/// Paints the truth with blob-shaped errors over 12 % of the image.
pub const SLOPPY: Behaviour = Behaviour::Sloppy { error: 0.12 };
/// Paints everything, missing a tenth of the small objects.
const HONEST: Behaviour = Behaviour::Honest { omit: 0.1 };

/// A crowd to measure a fusion on, and where it comes from.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub crowd: Crowd,
    /// The image sizes of a batch, in turn.
    pub sizes: &'static [(u32, u32)],
    pub kind: Kind,
}

/// Where a crowd comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the crowds the weighted fusion was first tuned on (`integration/crowd.rs`).
    Tuned,
    /// Rebuilt from the descriptions of the STAPLE comparison (issue 29).
    Described,
    /// Never described nor tuned on: held out, to test that a rule generalises.
    HeldOut,
}

/// The batch image size of the STAPLE comparison: 120×90.
pub const SMALL: &[(u32, u32)] = &[(120, 90)];

/// The spammer pool: four sloppy workers and one painting random blobs over 90 %, three of
/// the five on each image.
pub fn spammer_pool() -> Crowd {
    pool(
        &[
            ("a", SLOPPY),
            ("b", SLOPPY),
            ("c", SLOPPY),
            ("d", SLOPPY),
            ("spammer", Behaviour::Blobs { cover: 0.9 }),
        ],
        3,
    )
}

/// Every crowd of the quality benchmark: the six tuned on, the five described, and the
/// held-out ones.
pub fn cases() -> Vec<Case> {
    let case = |name, crowd, sizes, kind| Case {
        name,
        crowd,
        sizes,
        kind,
    };
    let sloppy5 = |odd: (&'static str, Behaviour)| {
        pool(
            &[
                ("a", SLOPPY),
                ("b", SLOPPY),
                ("c", SLOPPY),
                ("d", SLOPPY),
                odd,
            ],
            3,
        )
    };
    vec![
        case(
            "under-labelling (2 of 5 paint only the largest class)",
            pool(
                &[
                    ("s1", SLOPPY),
                    ("s2", SLOPPY),
                    ("s3", SLOPPY),
                    ("l1", Behaviour::OnlyLargest),
                    ("l2", Behaviour::OnlyLargest),
                ],
                5,
            ),
            SMALL,
            Kind::Tuned,
        ),
        case(
            "spammer (1 of 5, 3 per image)",
            spammer_pool(),
            SMALL,
            Kind::Tuned,
        ),
        case(
            "honest only (5, 3 per image)",
            sloppy5(("e", SLOPPY)),
            SMALL,
            Kind::Tuned,
        ),
        case(
            "one confuses car with person (1 of 5, 3 per image)",
            sloppy5(("car-as-person", Behaviour::Confuses { from: 1, to: 3 })),
            SMALL,
            Kind::Tuned,
        ),
        case(
            "adversary (1 of 3, all 3 per image)",
            pool(
                &[
                    ("a", SLOPPY),
                    ("b", SLOPPY),
                    ("adversary", Behaviour::Adversarial),
                ],
                3,
            ),
            SMALL,
            Kind::Tuned,
        ),
        case(
            "spammer, images of 3 sizes in one batch",
            spammer_pool(),
            &[(120, 90), (60, 45), (160, 120)],
            Kind::Tuned,
        ),
        case(
            "honest, 5 workers",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("c", HONEST),
                    ("d", HONEST),
                    ("e", HONEST),
                ],
                5,
            ),
            SMALL,
            Kind::Described,
        ),
        case(
            "a spammer among 3 of 5",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("c", HONEST),
                    ("d", HONEST),
                    ("spammer", Behaviour::Spammer),
                ],
                3,
            ),
            SMALL,
            Kind::Described,
        ),
        case(
            "2 of 5 paint only the largest class",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("c", HONEST),
                    ("l1", Behaviour::OnlyLargest),
                    ("l2", Behaviour::OnlyLargest),
                ],
                5,
            ),
            SMALL,
            Kind::Described,
        ),
        case(
            "one of 5 paints one class as another",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("c", HONEST),
                    ("d", HONEST),
                    ("x", Behaviour::Confuses { from: 4, to: 2 }),
                ],
                5,
            ),
            SMALL,
            Kind::Described,
        ),
        case(
            "one of 3 paints a wrong class on 40 %",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("wrong", Behaviour::Sloppy { error: 0.4 }),
                ],
                3,
            ),
            SMALL,
            Kind::Described,
        ),
        case(
            "2 of 5 paint every object 2 px larger",
            pool(
                &[
                    ("a", HONEST),
                    ("b", HONEST),
                    ("c", HONEST),
                    ("g1", Behaviour::Grows { px: 2 }),
                    ("g2", Behaviour::Grows { px: 2 }),
                ],
                5,
            ),
            SMALL,
            Kind::HeldOut,
        ),
        case(
            "one of 3 leaves people unpainted, one paints objects 1 px larger",
            pool(
                &[
                    ("a", HONEST),
                    ("no-people", Behaviour::Misses { class: 3 }),
                    ("g", Behaviour::Grows { px: 1 }),
                ],
                3,
            ),
            SMALL,
            Kind::HeldOut,
        ),
        case(
            "7 mixed workers, 4 per image",
            pool(
                &[
                    ("a", HONEST),
                    ("b", SLOPPY),
                    ("c", Behaviour::SkipsSmall),
                    ("d", Behaviour::Grows { px: 1 }),
                    ("e", Behaviour::Confuses { from: 2, to: 4 }),
                    ("f", Behaviour::Spammer),
                    ("g", HONEST),
                ],
                4,
            ),
            SMALL,
            Kind::HeldOut,
        ),
    ]
}
