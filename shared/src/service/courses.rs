//! The minimal course endpoints: create, enroll, list mine.

use crate::auth::{Identity, Role};
use crate::error::ApiError;
use crate::model::course::{CreateCourseInput, EnrollInput};
use crate::model::{Course, Enrollment, new_id, now, parse_id, parse_user_id};
use crate::store::{Page, Store};

use super::PageRequest;

/// `POST /api/courses`: a teacher creates a course they teach.
pub async fn create(
    store: &Store,
    who: &Identity,
    input: CreateCourseInput,
) -> Result<Course, ApiError> {
    if who.role != Role::Teacher {
        return Err(ApiError::forbidden(
            "teacher_only",
            "only teachers can create courses",
        ));
    }
    let (title, description) = input.validate()?;
    let course = Course {
        id: new_id(),
        title,
        description,
        teacher_id: who.user_id.clone(),
        created_at: now(),
    };
    store.create_course(&course).await?;
    Ok(course)
}

/// `POST /api/courses/{id}/enrollments`: the course's teacher enrolls a student.
/// Returns the enrollment and whether it is new (enrolling twice changes nothing).
pub async fn enroll(
    store: &Store,
    who: &Identity,
    course_id: &str,
    input: EnrollInput,
) -> Result<(Enrollment, bool), ApiError> {
    let course_id = parse_id(course_id, "course")?;
    let course = store
        .course(&course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if course.teacher_id != who.user_id {
        return Err(ApiError::forbidden(
            "not_course_teacher",
            "only the course's teacher can enroll students",
        ));
    }
    let user_id = parse_user_id(&input.user_id)?;
    if user_id == course.teacher_id {
        return Err(ApiError::invalid(
            "user_id",
            "the teacher of a course cannot enroll in it",
        ));
    }
    let enrollment = Enrollment {
        course_id: course.id,
        user_id,
        enrolled_by: who.user_id.clone(),
        enrolled_at: now(),
    };
    if store.enroll(&enrollment).await? {
        Ok((enrollment, true))
    } else {
        let existing = store
            .enrollment(&enrollment.course_id, &enrollment.user_id)
            .await?
            .ok_or_else(|| ApiError::Internal("enrollment vanished".into()))?;
        Ok((existing, false))
    }
}

/// `GET /api/courses/mine`: courses the caller teaches or is enrolled in.
pub async fn list_mine(
    store: &Store,
    who: &Identity,
    page: PageRequest,
) -> Result<Page<Course>, ApiError> {
    let (courses, next) = store
        .courses_of_user(&who.user_id, page.cursor.as_ref(), page.limit)
        .await?;
    Ok(Page {
        items: courses,
        next_cursor: next.map(|c| c.encode()),
    })
}
