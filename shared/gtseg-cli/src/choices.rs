//! The library's named choices as clap sees them: each a newtype whose values and names come
//! from the library (`ALL` and `name`), so that a name is spelt in one place.

use clap::ValueEnum;
use clap::builder::PossibleValue;

/// A `ValueEnum` newtype over a library enum with `ALL` and `name()`.
macro_rules! choice {
    ($(#[$doc:meta])* $arg:ident, $lib:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $arg(pub $lib);

        impl ValueEnum for $arg {
            fn value_variants<'a>() -> &'a [Self] {
                const ALL: &[$arg] = &{
                    let all = <$lib>::ALL;
                    let mut out = [$arg(all[0]); <$lib>::ALL.len()];
                    let mut i = 0;
                    while i < all.len() {
                        out[i] = $arg(all[i]);
                        i += 1;
                    }
                    out
                };
                ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.0.name()))
            }
        }
    };
}

choice!(
    /// `--algorithm`: [`gtseg::Algorithm`].
    AlgorithmArg,
    gtseg::Algorithm
);

choice!(
    /// `--task-type`: [`gtseg::TaskType`].
    TaskTypeArg,
    gtseg::TaskType
);

choice!(
    /// `gtseg export --format`: [`gtseg::export::Format`].
    FormatArg,
    gtseg::export::Format
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_is_offered_by_its_library_name() {
        let names: Vec<_> = AlgorithmArg::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_owned())
            .collect();
        assert_eq!(names, ["majority", "weighted"]);
        let parsed = AlgorithmArg::from_str("weighted", false).unwrap();
        assert_eq!(parsed.0, gtseg::Algorithm::Weighted);
        assert_eq!(
            TaskTypeArg::value_variants().len(),
            gtseg::TaskType::ALL.len()
        );
        let formats: Vec<_> = FormatArg::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_owned())
            .collect();
        assert_eq!(formats, ["voc", "coco", "hf"]);
    }
}
