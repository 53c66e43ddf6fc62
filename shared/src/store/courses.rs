//! Courses and enrollments.

use super::keys::{self, COURSE_SK};
use super::{Cursor, QuerySpec, Store, StoreError, from_item, s, to_item};
use crate::model::{Course, Enrollment};
use crate::table::{GSI2, GSI2PK, GSI2SK, KIND};

impl Store {
    pub async fn create_course(&self, course: &Course) -> Result<(), StoreError> {
        let mut item = to_item(course)?;
        item.insert(crate::table::PK.into(), s(keys::course_pk(&course.id)));
        item.insert(crate::table::SK.into(), s(COURSE_SK));
        item.insert(KIND.into(), s("course"));
        item.insert(GSI2PK.into(), s(keys::user_pk(&course.teacher_id)));
        item.insert(GSI2SK.into(), s(keys::course_ref(&course.id)));
        self.put_new(item).await
    }

    pub async fn course(&self, course_id: &str) -> Result<Option<Course>, StoreError> {
        self.get_as(keys::course_pk(course_id), COURSE_SK.into())
            .await
    }

    /// Enrolls a user; returns false when they already were (nothing is changed then).
    pub async fn enroll(&self, enrollment: &Enrollment) -> Result<bool, StoreError> {
        let mut item = to_item(enrollment)?;
        item.insert(
            crate::table::PK.into(),
            s(keys::course_pk(&enrollment.course_id)),
        );
        item.insert(
            crate::table::SK.into(),
            s(keys::member_sk(&enrollment.user_id)),
        );
        item.insert(KIND.into(), s("enrollment"));
        item.insert(GSI2PK.into(), s(keys::user_pk(&enrollment.user_id)));
        item.insert(GSI2SK.into(), s(keys::course_ref(&enrollment.course_id)));
        match self.put_new(item).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn enrollment(
        &self,
        course_id: &str,
        user_id: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        self.get_as(keys::course_pk(course_id), keys::member_sk(user_id))
            .await
    }

    /// Every enrollment of a course (its members), by user id.
    pub async fn course_members(&self, course_id: &str) -> Result<Vec<Enrollment>, StoreError> {
        // Every member's sort key starts like the one of an empty user id.
        let prefix = keys::member_sk("");
        let spec = QuerySpec {
            index: None,
            partition_attr: crate::table::PK,
            partition_value: keys::course_pk(course_id),
            sort_attr: crate::table::SK,
            sort_prefix: Some(&prefix),
            sort_after: None,
            forward: true,
            limit: 500,
            projection: None,
        };
        self.query_all(spec, usize::MAX)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// The courses a user teaches or is enrolled in, newest first.
    pub async fn courses_of_user(
        &self,
        user_id: &str,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<Course>, Option<Cursor>), StoreError> {
        let (items, next) = self
            .query_page(
                QuerySpec {
                    index: Some(GSI2),
                    partition_attr: GSI2PK,
                    partition_value: keys::user_pk(user_id),
                    sort_attr: GSI2SK,
                    sort_prefix: Some(keys::COURSE_REF_PREFIX),
                    sort_after: None,
                    forward: false,
                    limit,
                    projection: None,
                },
                cursor,
            )
            .await?;
        // Enrollment entries point at their course; fetch those courses in one batch.
        let mut course_ids = Vec::with_capacity(items.len());
        for item in &items {
            let kind = item
                .get(KIND)
                .and_then(|k| k.as_s().ok())
                .map(String::as_str);
            let id = item
                .get("course_id")
                .or_else(|| item.get("id"))
                .and_then(|v| v.as_s().ok());
            if let (Some("course" | "enrollment"), Some(id)) = (kind, id) {
                course_ids.push(id.clone());
            }
        }
        let fetched = self
            .batch_get(
                course_ids
                    .iter()
                    .map(|id| (keys::course_pk(id), COURSE_SK.to_string()))
                    .collect(),
            )
            .await?;
        let mut courses: Vec<Course> = fetched
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        courses.sort_by(|a, b| b.id.cmp(&a.id));
        Ok((courses, next))
    }

    /// The ids of every course a user is enrolled in (for visibility checks).
    pub async fn enrolled_course_ids(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let spec = QuerySpec {
            index: Some(GSI2),
            partition_attr: GSI2PK,
            partition_value: keys::user_pk(user_id),
            sort_attr: GSI2SK,
            sort_prefix: Some(keys::COURSE_REF_PREFIX),
            sort_after: None,
            forward: true,
            limit: 500,
            projection: None,
        };
        let items = self.query_all(spec, usize::MAX).await?;
        Ok(items
            .iter()
            .filter(|item| {
                item.get(KIND)
                    .and_then(|k| k.as_s().ok())
                    .is_some_and(|k| k == "enrollment")
            })
            .filter_map(|item| item.get("course_id").and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }
}
