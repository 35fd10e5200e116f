//! Removing an object and its lanes from `/dev/shm`.

use crate::error::{Errno, RemoveError};
use crate::object::name;
use crate::os;

/// Removes every shm object of `name` (data segment, reader table, writer
/// lock, a map's pages segment), and of its lanes (`name@<fingerprint>`, docs/DEPLOYING.md "Lanes").
///
/// Processes that have them open keep working on the old objects; new ones get
/// `NotFound`. `NotFound` if none of them existed.
pub fn remove(name: &str) -> Result<(), RemoveError> {
    let mut found = remove_object(name)?;
    if name::split_lane(name).is_none() {
        for (lane, _) in name::lanes_in_shm(name) {
            found |= remove_object(&lane)?;
        }
    }
    if found {
        Ok(())
    } else {
        Err(RemoveError::NotFound { name: name.into() })
    }
}

/// Removes the shm objects of `name` alone (not its lanes); whether any existed.
pub(crate) fn remove_object(name: &str) -> Result<bool, RemoveError> {
    name::validate(name).map_err(|reason| RemoveError::InvalidName { name: name.into(), reason })?;
    let mut found = false;
    for object in [name::data(name), name::readers(name), name::lock(name), name::pages(name)] {
        match os::ShmObject::unlink(&object) {
            Ok(()) => found = true,
            Err(Errno::NOENT) => {}
            Err(Errno::ACCESS | Errno::PERM) => return Err(RemoveError::PermissionDenied { name: name.into() }),
            Err(errno) => return Err(RemoveError::Os { name: name.into(), op: "unlinking", errno }),
        }
    }
    Ok(found)
}
